/**
 * Retention as an operator runs it (issue 19): drainers, a gateway and ops as processes
 * with RETENTION set, on every server of the matrix for trimming (it relies on nothing a
 * server may lack: no TTL index, no transaction), and on the primary for interest
 * retention and compacted topics. The log itself is checked afterwards: each partition a
 * gap-free run from its first retained sequence to its head; readers told, never stuck.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { MongoClient, type Db } from 'mongodb';
import { createOutbox, migrateOutbox } from '../internal/outbox/index.js';
import { MongoGroupStore } from '../internal/groupstore/index.js';
import { freshDbName } from './harness/db.js';
import { waitDrained } from './harness/drain.js';
import { TEST_SECRET, rootToken } from './harness/hub.js';
import { eventually, startBinary, type BinaryProcess } from './harness/process.js';
import { freePort } from './harness/server.js';
import { describeEachServer, testServers } from './harness/servers.js';
import { TestClient } from './harness/ws-client.js';

const procs: BinaryProcess[] = [];
const clients: TestClient[] = [];
const mongo: MongoClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.terminate();
  for (const p of procs.splice(0)) p.kill('SIGKILL');
  for (const m of mongo.splice(0)) await m.close();
});

interface Hub {
  db: Db;
  url: string;
  name: string;
  gateway: number;
  ops: number;
  drainerMetrics: number[];
  drainers: BinaryProcess[];
  startDrainer(i: number): BinaryProcess;
}

const PARTITIONS = 2;

async function hub(url: string, retention: object, extra: Record<string, string> = {}, drainers = 1): Promise<Hub> {
  const name = freshDbName('retention');
  const client = await new MongoClient(url).connect();
  mongo.push(client);
  const db = client.db(name);
  await migrateOutbox(db, { partitions: PARTITIONS });
  const common = {
    MONGO_URL: url,
    MONGO_DB: name,
    OUTBOX_PARTITIONS: String(PARTITIONS),
    METRICS_HOST: '127.0.0.1',
    RETENTION: JSON.stringify(retention),
    ...extra,
  };
  const drainerMetrics = await Promise.all(Array.from({ length: drainers }, () => freePort()));
  const h: Hub = {
    db,
    url,
    name,
    gateway: await freePort(),
    ops: await freePort(),
    drainerMetrics,
    drainers: [],
    startDrainer(i) {
      const d = startBinary('drainer', {
        ...common,
        METRICS_PORT: String(drainerMetrics[i]),
        MEMBER_ID: `drainer-${i}`,
        POLL_MAX: '50ms',
        LEASE_TTL: '2s',
        LEASE_RENEW_INTERVAL: '300ms',
        RETENTION_INTERVAL: '300ms',
      });
      procs.push(d);
      if (process.env['RETENTION_DEBUG']) d.child.stdout?.on('data', (b: Buffer) => process.stderr.write(b));
      h.drainers[i] = d;
      return d;
    },
  };
  for (let i = 0; i < drainers; i++) h.startDrainer(i);
  const gateway = startBinary('gateway', {
    ...common,
    METRICS_PORT: '0',
    GATEWAY_HOST: '127.0.0.1',
    GATEWAY_PORT: String(h.gateway),
    JWT_SECRET: TEST_SECRET,
    TAIL_POLL_MAX: '50ms',
    GROUP_LEASE_TTL: '2s',
    GROUP_LEASE_RENEW_INTERVAL: '300ms',
    CURSOR_FLUSH_INTERVAL: '100ms',
    ACK_TIMEOUT: '10m',
  });
  procs.push(gateway, startBinary('ops', { ...common, OPS_HOST: '127.0.0.1', OPS_PORT: String(h.ops), OPS_SAMPLE_INTERVAL: '300ms' }));
  await gateway.waitForLog((l) => l.msg === 'gateway listening', 60_000);
  await eventually(
    async () => (await fetch(`http://127.0.0.1:${h.ops}/readyz`).catch(() => undefined))?.status === 200,
    60_000,
    'ops to be ready',
  );
  return h;
}

async function client(port: number): Promise<TestClient> {
  const c = await TestClient.authed(port, await rootToken(600));
  clients.push(c);
  return c;
}

/** Per partition: the fence's first retained sequence, and the sequences the events collection holds. */
async function held(db: Db): Promise<Map<number, { first: number; seqs: number[] }>> {
  const out = new Map<number, { first: number; seqs: number[] }>();
  for (let p = 0; p < PARTITIONS; p++) {
    const fence = await db.collection<{ _id: number; first?: number }>('event_fences').findOne({ _id: p });
    const seqs = (
      await db
        .collection<{ seq: number }>('events')
        .find({ partition: p }, { sort: { seq: 1 }, projection: { seq: 1 } })
        .toArray()
    ).map((d) => d.seq);
    out.set(p, { first: fence?.first ?? 1, seqs });
  }
  return out;
}

/**
 * Each partition a gap-free run from its first retained sequence to its head (what readers
 * rely on). Events below `first` may still be there: a paced round raises `first`, then deletes
 * below it a hundred at a time; readers start at `first` whatever is left under it.
 */
function expectGapFree(h: Map<number, { first: number; seqs: number[] }>): void {
  for (const [p, { first, seqs }] of h) {
    const kept = seqs.filter((s) => s >= first);
    const from = kept[0] ?? first;
    expect({ p, from, contiguous: kept.every((s, i) => s === from + i) }).toEqual({ p, from: first, contiguous: true });
  }
}

describeEachServer('retention trims on', (server) => {
  it('a prefix per partition beyond maxEvents, and a replay or a group below it is told where the partition starts', async () => {
    const h = await hub(server.url, { default: { maxEvents: 20 } });
    const outbox = createOutbox(h.db, { partitions: PARTITIONS });
    // A group that consumes a little, then goes away: its cursor will be trimmed past.
    const member = await client(h.gateway);
    expect(
      await member.request({ op: 'SUBSCRIBE', sub: 'g', topic: 'ret.*', group: 'slowpoke', from: 'earliest', maxInFlight: 1 }),
    ).toMatchObject({
      op: 'OK',
    });
    await outbox.addMany(Array.from({ length: 4 }, (_, i) => ({ topic: 'ret.x', key: `k${i % 2}`, payload: { i } })));
    for (let i = 0; i < 4; i++) {
      const e = (await member.waitFor((f) => f.op === 'EVENT', 20_000, i)) as { event: { id: string } };
      expect(await member.request({ op: 'ACK', sub: 'g', eventId: e.event.id })).toMatchObject({ op: 'OK' });
    }
    member.ws.close();
    // A group with tags, registered but served by no gateway (as after every gateway restarted
    // while its consumers were away): nobody reads for it, so its cursors stay at 0.
    await new MongoGroupStore(h.db).register(
      'vip-watch',
      'ret.*',
      new Map([
        [0, 0],
        [1, 0],
      ]),
      ['vip'],
    );
    await sleep(500);
    for (let b = 0; b < 8; b++)
      await outbox.addMany(Array.from({ length: 20 }, (_, i) => ({ topic: 'ret.x', key: `k${i % 2}`, payload: { b, i } })));
    // The slots of a partition's last append always stay: once everything is drained (in one
    // append, on a slow server), two more events make the last appends small.
    await waitDrained(h.db, PARTITIONS, 60_000);
    await outbox.addMany([0, 1].map((i) => ({ topic: 'ret.x', key: `k${i}`, payload: { last: i } })));
    await waitDrained(h.db, PARTITIONS, 60_000);
    // Trimmed by the drainers (each partition keeps at least its last 20, and its last append).
    // The first retained sequence is raised before the events below it go: wait for both.
    await eventually(
      async () => [...(await held(h.db)).values()].every((x) => x.first > 20 && x.seqs[0] === x.first),
      60_000,
      'both partitions trimmed',
    );
    const state = await held(h.db);
    expectGapFree(state);

    // A replay from an explicit position below the first retained one: a TRIMMED notice per partition, then the rest in order.
    const r = await client(h.gateway);
    expect(await r.request({ op: 'SUBSCRIBE', sub: 'r', topic: 'ret.*', from: { '0': 0, '1': 0 } })).toMatchObject({ op: 'OK' });
    for (let p = 0; p < PARTITIONS; p++) {
      const notice = await r.waitFor((f) => f.op === 'ERR' && f.code === 'TRIMMED' && f.partition === p);
      expect(notice).toMatchObject({ sub: 'r', firstSeq: state.get(p)?.first });
    }
    const total = [...state.values()].reduce((n, x) => n + x.seqs.length, 0);
    const got = await r.nEvents(total, 'r', 20_000);
    for (let p = 0; p < PARTITIONS; p++) {
      const seqs = got.filter((e) => e.event.partition === p).map((e) => e.event.seq);
      expect(seqs).toEqual(state.get(p)?.seqs);
    }

    // The group comes back: told, per partition it skipped, and it goes on from there.
    const back = await client(h.gateway);
    expect(await back.request({ op: 'SUBSCRIBE', sub: 'g', topic: 'ret.*', group: 'slowpoke' })).toMatchObject({ op: 'OK' });
    const told = await back.waitFor((f) => f.op === 'ERR' && f.code === 'TRIMMED', 20_000);
    expect(told).toMatchObject({ sub: 'g' });
    const first = (await back.waitFor((f) => f.op === 'EVENT', 20_000)) as { event: { partition: number; seq: number } };
    expect(first.event.seq).toBeGreaterThanOrEqual(state.get(first.event.partition)?.first ?? Infinity);
    // The group with tags is served again: only events without tags were trimmed past its
    // cursor (the log recorded none with tags), so it is not told, and gets the next vip events. A
    // notice would come before the partition's first event: one event per partition shows there is none.
    const vipBack = await client(h.gateway);
    expect(await vipBack.request({ op: 'SUBSCRIBE', sub: 'v', topic: 'ret.*', group: 'vip-watch', tags: ['vip'] })).toMatchObject({
      op: 'OK',
    });
    const vipEvents = await outbox.addMany([0, 1].map((i) => ({ topic: 'ret.x', key: `k${i}`, payload: { vip: i }, tags: ['vip'] })));
    expect(new Set(vipEvents.map((r) => r.partition))).toEqual(new Set([0, 1]));
    const vipGot = await vipBack.nEvents(2, 'v', 20_000);
    expect(vipGot.map((e) => e.event.tags)).toEqual([['vip'], ['vip']]);
    expect(vipBack.frames.filter((f) => f.op === 'ERR')).toEqual([]);
    // A replay with tags from below the first retained sequences: the same, no notice (the replay
    // without tags above was told), and the vip events, in order.
    const vipReplay = await client(h.gateway);
    expect(await vipReplay.request({ op: 'SUBSCRIBE', sub: 'vr', topic: 'ret.*', tags: ['vip'], from: { '0': 0, '1': 0 } })).toMatchObject({
      op: 'OK',
    });
    expect((await vipReplay.nEvents(2, 'vr', 20_000)).map((e) => e.event.id).sort()).toEqual(vipEvents.map((r) => r.id).sort());
    expect(vipReplay.frames.filter((f) => f.op === 'ERR')).toEqual([]);
    // Ops and the drainer's metrics say the same.
    type RetentionAnswer = { partitions: Array<{ partition: number; first: number; trimmed: number }> };
    await eventually(
      async () => {
        const now = (await (await fetch(`http://127.0.0.1:${h.ops}/api/retention`)).json()) as RetentionAnswer;
        return now.partitions.every((x) => x.first >= (state.get(x.partition)?.first ?? 0) && x.trimmed === x.first - 1);
      },
      10_000,
      'ops to report the first retained sequences',
    );
    const metrics = await (await fetch(`http://127.0.0.1:${h.drainerMetrics[0]}/metrics`)).text();
    expect(metrics).toMatch(/outbox_retention_trimmed_total\{partition="0",binary="drainer"\} [1-9]/);
  }, 180_000);
});

const primary = testServers().find((s) => s.primary);

describe('retention on the primary server', () => {
  it('holds events a registered group has not acked until the hard cap, then trims them, counts it and tells the group', async () => {
    const h = await hub(primary?.url ?? '', {
      topics: [{ match: 'orders.*', maxEvents: 5, keepForGroups: true, hardMaxEvents: 40 }],
    });
    const outbox = createOutbox(h.db, { partitions: PARTITIONS });
    const member = await client(h.gateway);
    expect(
      await member.request({ op: 'SUBSCRIBE', sub: 'g', topic: 'orders.*', group: 'billing', from: 'earliest', maxInFlight: 1 }),
    ).toMatchObject({
      op: 'OK',
    });
    member.ws.close();
    await outbox.addMany(Array.from({ length: 30 }, (_, i) => ({ topic: 'orders.created', key: 'one-key', payload: { i } })));
    // Expired by count, but billing has acked nothing: held (a few rounds go by).
    await sleep(2_000);
    const partition = [...(await held(h.db))].find(([, x]) => x.seqs.length > 0)?.[0] as number;
    expect((await held(h.db)).get(partition)?.first).toBe(1);
    await outbox.addMany(Array.from({ length: 30 }, (_, i) => ({ topic: 'orders.created', key: 'one-key', payload: { i: i + 30 } })));
    // The last append's slots always stay: a last small append, after the rest is drained.
    await waitDrained(h.db, PARTITIONS, 60_000);
    await outbox.add({ topic: 'orders.created', key: 'one-key', payload: { i: 60 } });
    // Past the hard cap (40 newer events): trimmed anyway, and counted for billing.
    await eventually(
      async () => {
        const x = (await held(h.db)).get(partition);
        return (x?.first ?? 1) > 1 && x?.seqs[0] === x?.first;
      },
      30_000,
      'the hard cap to force a trim',
    );
    expectGapFree(await held(h.db));
    await eventually(
      async () =>
        /outbox_retention_forced_total\{group="billing",binary="drainer"\} [1-9]/.test(
          await (await fetch(`http://127.0.0.1:${h.drainerMetrics[0]}/metrics`)).text(),
        ),
      10_000,
      'outbox_retention_forced_total for billing',
    );
    const back = await client(h.gateway);
    expect(await back.request({ op: 'SUBSCRIBE', sub: 'g', topic: 'orders.*', group: 'billing' })).toMatchObject({ op: 'OK' });
    expect(await back.waitFor((f) => f.op === 'ERR' && f.code === 'TRIMMED', 20_000)).toMatchObject({ sub: 'g', partition });
  }, 120_000);

  it('serves compacted topics from the snapshot: no key missing, none twice, never an older value after a newer one, under concurrent writers, a drainer killed mid-batch and trimming', async () => {
    const h = await hub(
      primary?.url ?? '',
      { topics: [{ match: 'state.*', compact: true }], default: { maxEvents: 10 } },
      { DRAINER_BATCH_SIZE: '25' },
      2,
    );
    const KEYS = 40;
    // The truth: a live subscriber from before the first write sees every event in order.
    const truth = await client(h.gateway);
    expect(await truth.request({ op: 'SUBSCRIBE', sub: 't', topic: 'state.*' })).toMatchObject({ op: 'OK' });
    const outbox = createOutbox(h.db, { partitions: PARTITIONS });
    let writing = true;
    let written = 0;
    const writers = Array.from({ length: 3 }, async (_, w) => {
      for (let i = 0; writing; i++) {
        const batch = Array.from({ length: 10 }, (_, j) => ({
          topic: 'state.proc',
          key: `host-${(i * 7 + j * 3 + w) % KEYS}`,
          payload: { w, i, j },
        }));
        await outbox.addMany(batch);
        written += batch.length;
        await sleep(5);
      }
    });
    // Snapshot readers joining at random moments while everything moves.
    const readers: TestClient[] = [];
    const join = async (): Promise<void> => {
      const c = await client(h.gateway);
      expect(await c.request({ op: 'SUBSCRIBE', sub: 's', topic: 'state.*', from: 'snapshot' })).toMatchObject({ op: 'OK' });
      readers.push(c);
    };
    await sleep(800);
    await join();
    // A drainer killed mid-batch, then back.
    h.drainers[0]?.kill('SIGKILL');
    await sleep(700);
    await join();
    h.startDrainer(0);
    await sleep(1_500);
    await join();
    writing = false;
    await Promise.all(writers);
    // Everything published, and trimming has gone past most of it.
    await eventually(() => truth.events('t').length === written, 60_000, `every write to reach the live subscriber (${written})`);
    await eventually(
      async () => [...(await held(h.db)).values()].reduce((n, x) => n + x.seqs.length, 0) < written / 2,
      30_000,
      'trimming to remove most of the log',
    );
    await join();
    const latest = new Map<string, { seq: number; partition: number; id: string }>();
    for (const f of truth.events('t')) latest.set(f.event.key as string, f.event);
    expect(latest.size).toBe(KEYS);
    for (const [i, r] of readers.entries()) {
      // Caught up: each key's last event at the reader is the key's latest.
      await eventually(
        () =>
          [...latest].every(
            ([key, e]) =>
              r
                .events('s')
                .filter((f) => f.event.key === key)
                .at(-1)?.event.id === e.id,
          ),
        20_000,
        `snapshot reader ${i} to hold every key's latest value`,
      );
      const lastSeq = new Map<string, number>();
      const ids = new Set<string>();
      for (const f of r.events('s')) {
        expect({ reader: i, duplicate: ids.has(f.event.id) }).toEqual({ reader: i, duplicate: false });
        ids.add(f.event.id);
        const k = f.event.key as string;
        expect({ reader: i, key: k, older: f.event.seq <= (lastSeq.get(k) ?? 0) }).toEqual({ reader: i, key: k, older: false });
        lastSeq.set(k, f.event.seq);
      }
    }
    // The last reader joined after trimming: the snapshot alone gave it every key, once each.
    const last = readers.at(-1) as TestClient;
    expect(new Set(last.events('s').map((f) => f.event.key)).size).toBe(KEYS);
    expect(last.events('s')).toHaveLength(KEYS);
    // And ops serves a key's latest value from the snapshot, though the log no longer holds it.
    const [key, e] = [...latest][0] as [string, { id: string }];
    const served = (await (await fetch(`http://127.0.0.1:${h.ops}/api/events/latest?topic=state.proc&key=${key}`)).json()) as {
      id: string;
    };
    expect(served.id).toBe(e.id);
    expectGapFree(await held(h.db));
  }, 240_000);
});
