/**
 * Ops' retention figures per partition and topic (bytes held, events per topic, trimmed per
 * topic) on the in-memory log: the same as summing what the log holds, kept up to date across
 * appends and trims, bounded per sample, and bounded in memory and in metric labels.
 */
import { MemoryEventLog, type EventInput, type EventLogRetention } from '../internal/eventlog/index.js';
import { MAX_TOPICS, OTHER_TOPICS, OpsMetrics, RetentionWalk, TOPIC_METRICS, WALK_BUDGET, type Snapshot } from '../internal/ops/index.js';
import { createRegistry } from '../internal/telemetry/index.js';

let n = 0;
function ev(topic: string, size = 10): EventInput {
  n++;
  return { id: `e-${n}`, topic, key: null, payload: { pad: 'x'.repeat(size) }, headers: {}, createdAt: new Date() };
}

async function fill(log: MemoryEventLog, partition: number, events: EventInput[]): Promise<void> {
  for (let i = 0; i < events.length; i += 1000) await log.append(partition, 1, events.slice(i, i + 1000));
}

/** What a full read of the log says: bytes per partition, events and bytes per topic. */
async function truth(
  log: MemoryEventLog,
  partitions: number[],
): Promise<{ bytes: Map<number, number>; topics: Map<string, [number, number]> }> {
  const bytes = new Map<number, number>();
  const topics = new Map<string, [number, number]>();
  for (const p of partitions) {
    const { first } = await log.retention(p);
    let after = first - 1;
    for (;;) {
      const page = await log.sizes(p, after, 10_000);
      if (page.length === 0) break;
      for (const e of page) {
        bytes.set(p, (bytes.get(p) ?? 0) + e.bytes);
        const t = topics.get(e.topic) ?? [0, 0];
        topics.set(e.topic, [t[0] + 1, t[1] + e.bytes]);
      }
      after = (page.at(-1) as { seq: number }).seq;
    }
  }
  return { bytes, topics };
}

/** Counts the events each `sizes` call returns. */
function counting(log: MemoryEventLog): { port: Pick<EventLogRetention, 'sizes'>; read: () => number } {
  let read = 0;
  return {
    port: {
      sizes: async (p, after, limit) => {
        const r = await log.sizes(p, after, limit);
        read += r.length;
        return r;
      },
    },
    read: () => {
      const r = read;
      read = 0;
      return r;
    },
  };
}

async function update(
  walk: RetentionWalk,
  log: MemoryEventLog,
  partitions: number[],
): Promise<Map<number, { bytes: number; exact: boolean }>> {
  const out = new Map<number, { bytes: number; exact: boolean }>();
  for (const p of partitions) out.set(p, await walk.update(p, (await log.retention(p)).first, (await log.head(p)).seq));
  return out;
}

it('reports bytes per partition and events, bytes and trimmed events per topic, as the log holds them across appends and trims', async () => {
  const log = new MemoryEventLog();
  await fill(log, 0, [ev('orders.created', 10), ev('orders.created', 10), ev('audit.log', 500), ev('orders.created', 10)]);
  await fill(log, 1, [ev('audit.log', 500), ev('invoices.sent', 50)]);
  const walk = new RetentionWalk(log);
  let figures = await update(walk, log, [0, 1]);
  let want = await truth(log, [0, 1]);
  expect(figures.get(0)).toMatchObject({ bytes: want.bytes.get(0), exact: true });
  expect(figures.get(1)).toMatchObject({ bytes: want.bytes.get(1), exact: true });
  // Bytes are the stored size: a bigger payload weighs more.
  expect(walk.topics().map((t) => [t.topic, t.events, t.bytes, t.trimmedSinceStart])).toEqual([
    ['audit.log', 2, want.topics.get('audit.log')?.[1], 0],
    ['orders.created', 3, want.topics.get('orders.created')?.[1], 0],
    ['invoices.sent', 1, want.topics.get('invoices.sent')?.[1], 0],
  ]);
  expect(want.topics.get('audit.log')?.[1]).toBeGreaterThan(2 * 500);

  // More events, then a trim of partition 0's first three (one audit.log, two orders.created).
  await fill(log, 0, [ev('orders.created', 10), ev('invoices.sent', 50)]);
  await log.append(0, 1, [ev('orders.created', 10)]);
  expect(await log.trim(0, 1, 4, 100)).toEqual({ first: 4, deleted: 3 });
  figures = await update(walk, log, [0, 1]);
  want = await truth(log, [0, 1]);
  expect(figures.get(0)).toMatchObject({ bytes: want.bytes.get(0), exact: true });
  const topics = new Map(walk.topics().map((t) => [t.topic, t]));
  for (const [topic, [events, bytes]] of want.topics) expect(topics.get(topic)).toMatchObject({ events, bytes });
  expect(topics.get('orders.created')?.trimmedSinceStart).toBe(2);
  expect(topics.get('audit.log')?.trimmedSinceStart).toBe(1);
  expect(topics.get('invoices.sent')?.trimmedSinceStart).toBe(0);
});

it('reads at most WALK_BUDGET events per partition per sample going forward, says it is catching up meanwhile, then is exact', async () => {
  const log = new MemoryEventLog();
  const total = 2 * WALK_BUDGET + 1_500;
  await fill(
    log,
    0,
    Array.from({ length: total }, (_, i) => ev(i % 3 === 0 ? 'a.x' : 'b.x')),
  );
  const { port, read } = counting(log);
  const walk = new RetentionWalk(port);
  const samples: Array<{ read: number; exact: boolean; countedTo: number }> = [];
  for (let i = 0; i < 4; i++) {
    const f = await walk.update(0, 1, total);
    samples.push({ read: read(), exact: f.exact, countedTo: f.countedTo });
  }
  expect(samples).toEqual([
    { read: WALK_BUDGET, exact: false, countedTo: WALK_BUDGET },
    { read: WALK_BUDGET, exact: false, countedTo: 2 * WALK_BUDGET },
    { read: 1_500, exact: true, countedTo: total },
    // Nothing new: nothing read.
    { read: 0, exact: true, countedTo: total },
  ]);
  const want = await truth(log, [0]);
  expect(new Map(walk.topics().map((t) => [t.topic, [t.events, t.bytes]]))).toEqual(want.topics);
  // A trim inside a block reads that block's remainder again (at most one block), not the partition.
  await log.append(0, 1, [ev('a.x')]);
  await log.trim(0, 1, 1_500, 10_000);
  await walk.update(0, 1_500, total + 1);
  expect(read()).toBeLessThanOrEqual(1_000 + 1);
  expect(new Map(walk.topics().map((t) => [t.topic, [t.events, t.bytes]]))).toEqual((await truth(log, [0])).topics);
});

it('keeps memory bounded on a long partition (coarser blocks; a cut block is pro-rated and marked estimated) and topics capped', async () => {
  const log = new MemoryEventLog();
  const total = 300_000;
  await fill(
    log,
    0,
    Array.from({ length: total }, (_, i) => ev(i % 2 === 0 ? 'even.x' : 'odd.x', 0)),
  );
  const walk = new RetentionWalk(log);
  let f = await walk.update(0, 1, total);
  while (f.countedTo < total) f = await walk.update(0, 1, total);
  expect(f.exact).toBe(true);
  const exactBytes = f.bytes;
  // 300 blocks of 1,000 became 150 of 2,000. Trimmed to the start of a block's second half
  // (1,500 events left in it, more than one read): pro-rated, close, and flagged.
  await log.append(0, 1, [ev('even.x', 0)]);
  await log.trim(0, 1, 501, 10_000);
  f = await walk.update(0, 501, total + 1);
  expect(f.exact).toBe(false);
  const want = (await truth(log, [0])).bytes.get(0) as number;
  expect(Math.abs(f.bytes - want) / want).toBeLessThan(0.01);
  expect(f.bytes).toBeLessThan(exactBytes);

  // Topics past MAX_TOPICS are summed under OTHER_TOPICS.
  const many = new MemoryEventLog();
  await fill(
    many,
    1,
    Array.from({ length: MAX_TOPICS + 50 }, (_, i) => ev(`t.${i}`)),
  );
  const w = new RetentionWalk(many);
  await w.update(1, 1, MAX_TOPICS + 50);
  const rows = w.topics();
  expect(rows).toHaveLength(MAX_TOPICS + 1);
  expect(rows.find((r) => r.topic === OTHER_TOPICS)?.events).toBe(50);
});

it('exports bytes per partition and the TOPIC_METRICS topics with the most bytes, forgetting topics that drop out', async () => {
  const registry = createRegistry('ops');
  const metrics = new OpsMetrics(registry);
  const snap = (topics: Array<[string, number]>): Snapshot => ({
    at: new Date(),
    heads: [3],
    retention: [
      {
        partition: 0,
        first: 1,
        last: 3,
        retained: 3,
        trimmed: 0,
        oldestAgeSeconds: 1,
        compactedTo: 0,
        taggedTo: 0,
        bytes: 321,
        countedTo: 3,
        exact: true,
      },
    ],
    topics: topics.map(([topic, bytes]) => ({ topic, events: 1, bytes, trimmedSinceStart: 0 })),
    groups: [],
    lapsed: { drainers: [], gateways: [] },
    tookMs: 1,
  });
  metrics.record(snap(Array.from({ length: TOPIC_METRICS + 5 }, (_, i) => [`t.${i}`, 1_000 - i] as [string, number])));
  let text = await registry.metrics();
  expect(text).toMatch(/^ops_retention_retained_bytes\{partition="0",binary="ops"\} 321$/m);
  expect(text.match(/^ops_retention_topic_bytes\{/gm)).toHaveLength(TOPIC_METRICS);
  expect(text).toMatch(/^ops_retention_topic_bytes\{topic="t\.0",binary="ops"\} 1000$/m);
  expect(text).not.toMatch(new RegExp(`topic="t\\.${TOPIC_METRICS}"`));
  // t.0 shrinks out of the top: its series go.
  metrics.record(snap([...Array.from({ length: TOPIC_METRICS }, (_, i) => [`t.${i + 1}`, 1_000] as [string, number]), ['t.0', 1]]));
  text = await registry.metrics();
  expect(text).not.toMatch(/topic="t\.0"/);
  expect(text.match(/^ops_retention_topic_events\{/gm)).toHaveLength(TOPIC_METRICS);
});
