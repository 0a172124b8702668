/**
 * The ops API against the real test server with seeded data, and the dashboard
 * in real headless Chromium.
 */
import { mkdirSync } from 'node:fs';
import { BSON, type Db } from 'mongodb';
import { chromium } from 'playwright-core';
import { MongoEventLog } from '../internal/eventlog/index.js';
import { MongoGroupStore, groupLeaseGroup, migrateGroups } from '../internal/groupstore/index.js';
import { MongoLeaseStore } from '../internal/lease/index.js';
import { createLogger } from '../internal/log/index.js';
import { LAG_WINDOW, OpsApp, loadOpsConfig } from '../internal/ops/index.js';
import { createOutbox, migrateOutbox, MongoOutboxStore, partitionOf } from '../internal/outbox/index.js';
import { migrateEventLog } from '../internal/eventlog/index.js';
import { migrateLeases } from '../internal/lease/index.js';
import { createRegistry } from '../internal/telemetry/index.js';
import { useTestDb } from './harness/db.js';
import { eventually } from './harness/process.js';
import { startWireRecorder, type WireCommand } from './harness/wire.js';

const t = useTestDb('ops');
const ADMIN = 'admin-token-0123456789';
const READ = 'read-token-0123456789abc';
const apps: OpsApp[] = [];

async function ops(db: string, env: Record<string, string> = {}): Promise<{ app: OpsApp; url: string }> {
  const app = new OpsApp(
    loadOpsConfig({
      MONGO_URL: t.url,
      MONGO_DB: db,
      OPS_HOST: '127.0.0.1',
      OPS_PORT: '0',
      OUTBOX_PARTITIONS: '4',
      OPS_SAMPLE_INTERVAL: '200ms',
      ...env,
    }),
    {
      log: createLogger({ level: 'error' }),
      registry: createRegistry('ops'),
    },
  );
  await app.start();
  apps.push(app);
  return { app, url: `http://127.0.0.1:${app.port}` };
}
afterAll(async () => {
  for (const a of apps) await a.stop();
});

/** A database with every collection ops reads (4 partitions), and its event log. */
async function migrated(dbName: string): Promise<{ db: Db; log: MongoEventLog }> {
  const db = t.client.db(dbName);
  await migrateOutbox(db, { partitions: 4 });
  await migrateEventLog(db);
  await migrateLeases(db);
  await migrateGroups(db);
  return { db, log: new MongoEventLog(db) };
}

/** Seeds: events in partition 0 and 1, pending messages, one dead message, drainer leases on 0-2, a lagging group with a dead letter. */
async function seed(dbName: string): Promise<{ pendingIds: string[] }> {
  const { db, log } = await migrated(dbName);
  const mk = (i: number, key: string) => ({
    id: `ev-${key}-${i}`,
    topic: 'orders.created',
    key,
    payload: { i },
    headers: {},
    createdAt: new Date(Date.now() - 120_000),
  });
  await log.append(0, 1, [
    mk(1, 'a'),
    mk(2, 'a'),
    mk(3, 'b'),
    mk(4, 'a'),
    { ...mk(6, 'a'), topic: 'invoices.sent', causedBy: ['ev-a-1'], tags: ['billing', 'eu'] },
  ]);
  await log.append(1, 1, [mk(5, 'z')]);
  const outbox = createOutbox(db, { partitions: 4 });
  const pending = await outbox.addMany([
    { topic: 'orders.created', key: 'p1', payload: 1 },
    { topic: 'orders.created', key: 'p2', payload: 2 },
  ]);
  // A message that failed for good, as the drainer leaves it.
  await db.collection('outbox_dead').insertOne({
    _id: 'dead-1' as never,
    topic: 'orders.broken',
    key: 'd',
    partition: partitionOf('d', 4),
    payload: {},
    headers: {},
    ts: 1,
    createdAt: new Date(),
    attempts: 5,
    lastError: 'boom',
    diedAt: new Date(),
  });
  const leases = new MongoLeaseStore(db);
  for (const p of [0, 1, 2]) await leases.acquire('drainer', p, 'drainer-a', 60_000);
  await leases.heartbeat('drainer', 'drainer-a', 60_000);
  await leases.heartbeat('gateway', 'gateway-a', 60_000);
  // A drainer that was killed: its heartbeat lapsed and it never left.
  await leases.heartbeat('drainer', 'drainer-killed', 1);
  const groups = new MongoGroupStore(db);
  // billing reads orders.* (4 of the 5 events after its cursors), a gateway serves it and it has a dead letter.
  await groups.register('billing', 'orders.*');
  await groups.saveCursor('billing', 0, 1, 1);
  await leases.heartbeat(groupLeaseGroup('billing'), 'gateway-a', 60_000);
  const events = await log.read({ partition: 0, afterSeq: 1, limit: 1 });
  await groups.deadLetter('billing', events[0]!, 5, 'ack timeout');
  // abandoned reads invoices.*: one event behind, and nobody consumes it any more.
  await groups.register('abandoned', 'invoices.*');
  return { pendingIds: pending.map((r) => r.id) };
}

describe('ops API', () => {
  const dbName = `${t.name}_api`;
  let url = '';
  beforeAll(async () => {
    await seed(dbName);
    url = (await ops(dbName, { OPS_ADMIN_TOKEN: ADMIN })).url;
  });
  /** GETs `path`; `T` is the shape the test expects the JSON body to have (text bodies come back as strings). */
  const get = async <T = unknown>(path: string, headers: Record<string, string> = {}) => {
    const res = await fetch(url + path, { headers });
    const body: unknown = (res.headers.get('content-type') ?? '').includes('application/json') ? await res.json() : await res.text();
    return { status: res.status, body: body as T, type: res.headers.get('content-type') };
  };
  interface Overview {
    backlog: unknown;
    unownedPartitions: number[];
    leases: { drainers: Array<{ member: string }>; gateways: Array<{ member: string }> };
    lapsed: { drainers: Array<{ member: string }>; gateways: Array<{ member: string }> };
    groups: Array<{ group: string; maxLagSeconds: number }>;
    groupDeadLetters: number;
    partitionHeads: Array<{ head: number }>;
    sampledAt: string;
  }

  it('summarises backlog, leases, replicas, throughput and groups', async () => {
    const { status, body } = await get<Overview>('/api/overview');
    expect(status).toBe(200);
    expect(body.backlog).toMatchObject({ pending: 2, dead: 1 });
    expect(body.unownedPartitions).toEqual([3]);
    expect(body.leases.drainers.map((m) => m.member)).toEqual(['drainer-a']);
    expect(body.leases.gateways.map((m) => m.member)).toEqual(['gateway-a']);
    // Replicas that died without leaving are named.
    expect(body.lapsed.drainers.map((m) => m.member)).toEqual(['drainer-killed']);
    expect(body.lapsed.gateways).toEqual([]);
    // Lag honours each group's filter: billing is 5 events behind the heads, 4 of them orders.*.
    expect(body.groups).toEqual([
      expect.objectContaining({ group: 'abandoned', filter: 'invoices.*', lagEvents: 1, lagExact: true, gateways: 0, deadLetters: 0 }),
      expect.objectContaining({ group: 'billing', filter: 'orders.*', lagEvents: 4, lagExact: true, gateways: 1, deadLetters: 1 }),
    ]);
    expect(body.groups[1]?.maxLagSeconds).toBeGreaterThan(0);
    expect(body.groupDeadLetters).toBe(1);
    expect(Date.parse(body.sampledAt)).toBeLessThanOrEqual(Date.now());
    expect(body.partitionHeads.map((p) => p.head)).toEqual([5, 1, 0, 0]);
  });

  it('reports per-partition backlog, leases and group lag', async () => {
    const backlog = (await get('/api/backlog')).body as Array<{
      partition: number;
      pending: number;
      dead: number;
      oldestPendingAgeSeconds: number;
    }>;
    expect(backlog.reduce((n, b) => n + b.pending, 0)).toBe(2);
    expect(backlog.find((b) => b.partition === partitionOf('d', 4))?.dead).toBe(1);
    const leases = (await get<{ partitions: unknown[] }>('/api/leases')).body;
    expect(leases.partitions[0]).toMatchObject({ partition: 0, holder: 'drainer-a', epoch: 1, live: true });
    expect(leases.partitions[3]).toMatchObject({ partition: 3, holder: null, live: false });
    const { groups } = (await get<{ groups: Array<{ group: string; partitions: Array<{ lagSeconds: number }> }> }>('/api/groups')).body;
    const billing = groups.find((g) => g.group === 'billing');
    expect(billing?.partitions[0]).toMatchObject({ partition: 0, cursor: 1, head: 5, lagEvents: 3, lagExact: true });
    expect(billing?.partitions[1]).toMatchObject({ partition: 1, cursor: 0, head: 1, lagEvents: 1 });
    expect(billing?.partitions[0]?.lagSeconds).toBeGreaterThan(0);
    expect(groups.find((g) => g.group === 'abandoned')?.partitions[0]).toMatchObject({ cursor: 0, head: 5, lagEvents: 1 });
  });

  it('reports retention per partition with the bytes held, and per topic: events, bytes, trimmed', async () => {
    // The truth: the stored documents' BSON sizes, per partition and per topic.
    const docs = await t.client.db(dbName).collection('events').find({}).toArray();
    const size = (f: (d: (typeof docs)[number]) => boolean) => docs.filter(f).reduce((n, d) => n + BSON.calculateObjectSize(d), 0);
    type Answer = {
      sampledAt: string;
      exact: boolean;
      partitions: Array<{ partition: number; retained: number; bytes: number; countedTo: number; exact: boolean }>;
      topics: Array<{ topic: string; events: number; bytes: number; trimmedSinceStart: number }>;
    };
    const { body } = await get<Answer>('/api/retention');
    expect(body.exact).toBe(true);
    expect(body.partitions.map((p) => [p.partition, p.retained, p.bytes, p.countedTo, p.exact])).toEqual([
      [0, 5, size((d) => d['partition'] === 0), 5, true],
      [1, 1, size((d) => d['partition'] === 1), 1, true],
      [2, 0, 0, 0, true],
      [3, 0, 0, 0, true],
    ]);
    // Most bytes first.
    expect(body.topics).toEqual([
      { topic: 'orders.created', events: 5, bytes: size((d) => d['topic'] === 'orders.created'), trimmedSinceStart: 0 },
      { topic: 'invoices.sent', events: 1, bytes: size((d) => d['topic'] === 'invoices.sent'), trimmedSinceStart: 0 },
    ]);
    // The overview (the page's partition table) carries the bytes too.
    expect((await get<{ retention: Array<{ bytes: number }> }>('/api/overview')).body.retention[0]?.bytes).toBe(body.partitions[0]?.bytes);
    const metrics = (await get<string>('/metrics')).body;
    expect(metrics).toContain(`ops_retention_retained_bytes{partition="0",binary="ops"} ${body.partitions[0]?.bytes}`);
    expect(metrics).toContain('ops_retention_topic_events{topic="orders.created",binary="ops"} 5');
    expect(metrics).toContain(`ops_retention_topic_bytes{topic="invoices.sent",binary="ops"} ${body.topics[1]?.bytes}`);
  });

  it('reads the latest event by key, a range, and streams an NDJSON export', async () => {
    expect((await get('/api/events/latest?topic=orders.created&key=a')).body).toMatchObject({ id: 'ev-a-4', seq: 4 });
    expect((await get('/api/events/latest?topic=orders.created&key=nobody')).status).toBe(404);
    expect(((await get('/api/events?partition=0&after=1&limit=2')).body as Array<{ seq: number }>).map((e) => e.seq)).toEqual([2, 3]);
    const exp = await get('/api/events/export?partition=0');
    expect(exp.type).toContain('application/x-ndjson');
    const lines = (exp.body as string)
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { seq: number });
    expect(lines.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(((await get('/api/events/export?partition=0&after=1&until=3')).body as string).trim().split('\n')).toHaveLength(2);
  });

  it('refuses malformed and operator-like parameters before querying', async () => {
    for (const [path, parameter] of [
      ['/api/events?partition=abc', 'partition'],
      ['/api/events?partition=9', 'partition'],
      ['/api/events?partition[$gt]=0', 'partition'],
      ['/api/events?partition=0&limit=100000', 'limit'],
      ['/api/events?partition=0&partition=1', 'partition'],
      ['/api/events/latest?topic=orders..x&key=a', 'topic'],
      ['/api/events/latest?topic=orders.created', 'key'],
    ] as const) {
      const r = await get(path);
      expect({ path, status: r.status, body: r.body }).toEqual({
        path,
        status: 400,
        body: expect.objectContaining({ error: 'INVALID_PARAMETER', parameter }) as unknown,
      });
    }
    expect((await get('/api/nope')).body).toMatchObject({ error: 'NOT_FOUND' });
  });

  it('requires the admin token for mutations, then requeues and replays', async () => {
    const post = (path: string, token?: string) =>
      fetch(url + path, { method: 'POST', headers: token ? { authorization: `Bearer ${token}` } : {} });
    expect((await post('/api/outbox/dead-1/requeue')).status).toBe(401);
    expect(await (await post('/api/outbox/dead-1/requeue', 'wrong-token-0123456789')).json()).toMatchObject({ error: 'UNAUTHORIZED' });
    expect((await get('/api/outbox/dead-1')).body).toMatchObject({ status: 'dead', lastError: 'boom' });
    expect((await post('/api/outbox/dead-1/requeue', ADMIN)).status).toBe(200);
    expect((await get('/api/outbox/dead-1')).body).toMatchObject({ status: 'pending', attempts: 0 });
    expect((await post('/api/outbox/dead-1/requeue', ADMIN)).status).toBe(404);
    const dead = (await get<{ groups: Array<{ letters: Array<{ event: { id: string } }> }> }>('/api/dead-letters')).body;
    const eventId = dead.groups[0]?.letters[0]?.event.id ?? '';
    expect((await post(`/api/groups/billing/dead-letters/${eventId}/replay`, ADMIN)).status).toBe(200);
    const letters = await new MongoGroupStore(t.client.db(dbName)).listDeadLetters('billing', 10);
    expect(letters[0]?.status).toBe('replay');
  });

  it('deletes an abandoned group (admin), and refuses one that still has consumers', async () => {
    const del = (path: string, token?: string) =>
      fetch(url + path, { method: 'DELETE', headers: token ? { authorization: `Bearer ${token}` } : {} });
    const db = t.client.db(dbName);
    const store = new MongoGroupStore(db);
    await store.register('stale', 'orders.*');
    expect(await store.saveCursor('stale', 0, 2, 1)).toBe(true);
    expect((await del('/api/groups/stale')).status).toBe(401);
    expect(await (await del('/api/groups/billing', ADMIN)).json()).toMatchObject({ error: 'GROUP_ACTIVE' });
    expect((await del('/api/groups/stale', ADMIN)).status).toBe(200);
    expect((await del('/api/groups/stale', ADMIN)).status).toBe(404);
    expect((await store.listGroups(10)).map((g) => g.name)).toEqual(['abandoned', 'billing']);
    expect(await store.loadCursors('stale')).toEqual(new Map());
    expect((await get<{ groups: Array<{ group: string }> }>('/api/groups')).body.groups.map((g) => g.group)).not.toContain('stale');
  });

  it('serves metrics (group lag from the store, whoever consumes), health and readiness', async () => {
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/readyz')).status).toBe(200);
    const metrics = (await get<string>('/metrics')).body;
    expect(metrics).toMatch(/ops_http_requests_total\{route="\/api\/overview",status="200",binary="ops"\}/);
    expect(metrics).toMatch(/ops_group_lag_events\{group="billing",binary="ops"\} 4/);
    expect(metrics).toMatch(/ops_group_lag_events\{group="abandoned",binary="ops"\} 1/);
    expect(metrics).toMatch(/ops_group_gateways\{group="abandoned",binary="ops"\} 0/);
    expect(metrics).toMatch(/ops_group_dead_letters\{group="billing",binary="ops"\} 1/);
    expect(metrics).toMatch(/ops_lapsed_replicas\{component="drainer",binary="ops"\} 1/);
  });
});

it('protects reads with the read token when one is set, and refuses mutations without an admin token', async () => {
  const dbName = `${t.name}_read`;
  await seed(dbName);
  const { url } = await ops(dbName, { OPS_READ_TOKEN: READ });
  expect((await fetch(`${url}/api/backlog`)).status).toBe(401);
  expect((await fetch(`${url}/api/backlog`, { headers: { authorization: `Bearer ${READ}` } })).status).toBe(200);
  const r = await fetch(`${url}/api/outbox/dead-1/requeue`, { method: 'POST', headers: { authorization: `Bearer ${READ}` } });
  expect(await r.json()).toMatchObject({ error: 'MUTATIONS_DISABLED' });
});

it('renders the dashboard in Chromium: problems at a glance, leases, and a working requeue button', async () => {
  const dbName = `${t.name}_page`;
  await seed(dbName);
  const { url } = await ops(dbName, { OPS_ADMIN_TOKEN: ADMIN });
  const browser = await chromium.launch({
    executablePath: process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    // The page runs under its Content-Security-Policy: any violation would be a blocked script or style.
    const violations: string[] = [];
    page.on('console', (m) => {
      if (/Content.Security.Policy/i.test(m.text())) violations.push(m.text());
    });
    await page.goto(url);
    await page.evaluate((token) => sessionStorage.setItem('admin', token), ADMIN);
    await page.waitForSelector('#t-dead button[data-requeue="dead-1"]', { timeout: 15_000 });
    const summary = await page.textContent('#summary');
    expect(summary).toContain('1 partitions without a drainer');
    expect(summary).toContain('1 dead messages');
    expect(summary).toContain('1 group dead letters');
    expect(summary).toContain('1 drainer(s) stopped without leaving in the last hour (drainer-killed');
    expect(summary).toContain('no consumers: abandoned');
    expect(await page.textContent('#updated')).toMatch(/^updated \S+/);
    expect(await page.textContent('#t-leases')).toContain('drainer-a');
    expect(await page.textContent('#t-groups')).toContain('billing');
    // Retention: bytes per partition, and the per-topic table with when it was counted.
    await page.waitForSelector('#t-topics td');
    expect(await page.textContent('#t-retention')).toContain('bytes held');
    expect(await page.textContent('#t-retention')).toMatch(/\d+(\.\d)? (B|KiB)/);
    expect(await page.textContent('#t-topics')).toContain('orders.created');
    expect(await page.textContent('#t-topics')).toContain('invoices.sent');
    expect(await page.textContent('#topics-note')).toMatch(/^counted from the log as of \S+/);
    expect(violations).toEqual([]);
    mkdirSync('test-artifacts', { recursive: true });
    await page.screenshot({ path: 'test-artifacts/ops-dashboard.png', fullPage: true });
    await page.click('#t-dead button[data-requeue="dead-1"]');
    await page.waitForFunction(
      () =>
        document.querySelector('#t-dead button[data-requeue="dead-1"]')?.textContent === 'done' ||
        !document.querySelector('#t-dead button[data-requeue="dead-1"]'),
    );
    const m = await new MongoOutboxStore(t.client.db(dbName), { partitions: 4 }).get('dead-1');
    expect(m?.status).toBe('pending');
    // A group nobody consumes can be deleted from the page (after a confirmation); one with consumers cannot.
    expect(await page.$('#t-groups button[data-delete-group="billing"]')).toBeNull();
    page.on('dialog', (d) => void d.accept());
    await page.click('#t-groups button[data-delete-group="abandoned"]');
    await page.waitForFunction(
      () => !document.querySelector('#t-groups button[data-delete-group="abandoned"]')?.textContent?.includes('Delete'),
    );
    await eventually(
      async () => (await new MongoGroupStore(t.client.db(dbName)).listGroups(10)).every((g) => g.name !== 'abandoned'),
      10_000,
      'the group to be deleted',
    );
    // An event by id: its tags and causes; its cause lists it as an effect, one click away.
    await page.fill('#event-id', 'ev-a-6');
    await page.click('#f-event button[type="submit"]');
    await page.waitForSelector('#event-tags');
    expect(await page.textContent('#event-tags')).toBe('billing, eu');
    expect(await page.textContent('#event-topic')).toBe('invoices.sent');
    await page.click('#event-caused-by button[data-event="ev-a-1"]');
    await page.waitForFunction(() => document.querySelector<HTMLInputElement>('#event-id')?.value === 'ev-a-1');
    await page.waitForSelector('#t-caused button[data-event="ev-a-6"]');
    expect(await page.textContent('#event-topic')).toBe('orders.created');
    await page.fill('#event-id', 'no-such-event');
    await page.click('#f-event button[type="submit"]');
    await page.waitForFunction(() => document.querySelector('#t-event')?.textContent?.includes('NOT_FOUND'));
    expect(await page.$('#f-event button[disabled]')).toBeNull();
  } finally {
    await browser.close();
  }
});

describe('ops work is bounded', () => {
  /** Seeds `groups` groups (filters alternating) over `events` events per partition, each group half way. */
  async function seedMany(dbName: string, groups: number, events: number): Promise<void> {
    const { db, log } = await migrated(dbName);
    for (let p = 0; p < 4; p++) {
      for (let from = 0; from < events; from += 100) {
        const batch = Array.from({ length: Math.min(100, events - from) }, (_, i) => ({
          id: `${dbName}-${p}-${from + i}`,
          topic: (from + i) % 3 === 0 ? 'invoices.sent' : 'orders.created',
          key: `k${i % 7}`,
          payload: { i },
          headers: {},
          createdAt: new Date(),
        }));
        await log.append(p, 1, batch);
      }
    }
    const store = new MongoGroupStore(db);
    for (let g = 0; g < groups; g++) {
      const name = `g${g}`;
      await store.register(name, g % 2 === 0 ? 'orders.*' : '**');
      for (let p = 0; p < 4; p++) expect(await store.saveCursor(name, p, Math.floor(events / 2), 1)).toBe(true);
    }
  }

  const eventQueries = (cs: WireCommand[]) => cs.filter((c) => c.collection === 'events');
  const filterOf = (c: WireCommand): Record<string, unknown> =>
    (c.name === 'aggregate'
      ? ((c.body['pipeline'] as Array<Record<string, unknown>>)[0]?.['$match'] ?? {})
      : (c.body['filter'] ?? {})) as Record<string, unknown>;

  it('answers the dashboard from the sample: no request reads group state or scans the log, whatever the groups and events', async () => {
    const recorder = await startWireRecorder(t.url);
    try {
      const measured: Array<{ groups: number; perPath: Record<string, number>; sample: WireCommand[] }> = [];
      for (const [groups, events] of [
        [2, 40],
        [8, 400],
      ] as const) {
        const dbName = `${t.name}_bounded_${groups}`;
        await seedMany(dbName, groups, events);
        const started = recorder.commands.length;
        // A long interval: the only sample is the one taken before the API answers.
        const { url } = await ops(dbName, { MONGO_URL: recorder.url, OPS_SAMPLE_INTERVAL: '10m' });
        const sample = recorder.commands
          .slice(started)
          .filter((c) => c.collection !== '' && !['createIndexes', 'listIndexes', 'create'].includes(c.name));
        const perPath: Record<string, number> = {};
        for (const path of ['/api/overview', '/api/groups', '/api/dead-letters', '/api/leases', '/api/partitions']) {
          const cs = await recorder.during(async () => expect((await fetch(url + path)).status).toBe(200));
          perPath[path] = cs.length;
          // Requests read the log only by id (a partition's head: the fence's recorded ids), never by range or scan.
          const unkeyed = eventQueries(cs).filter((c) => c.name !== 'find' || typeof filterOf(c)['_id'] !== 'string');
          expect({ path, unkeyed }).toEqual({ path, unkeyed: [] });
          expect({ path, groupState: cs.filter((c) => c.collection.startsWith('group')).length }).toEqual({ path, groupState: 0 });
        }
        measured.push({ groups, perPath, sample });
      }
      // The same number of queries per request with 2 groups over 160 events as with 8 over 1,600.
      expect(measured[0]?.perPath).toEqual(measured[1]?.perPath);
      expect(measured[0]?.perPath['/api/groups']).toBe(0);
      for (const { groups, sample } of measured) {
        // A sample: a few queries per group (cursors, gateways, dead letters, one or two counts) and, per partition,
        // its head (the fence, then a binary search over the last append's ids: 1 + log2(1000) lookups at most).
        expect({ groups, queries: sample.length }).toEqual({ groups, queries: expect.any(Number) as number });
        expect({ groups, bounded: sample.length <= 6 + 4 * (1 + 10) + groups * 6 }).toEqual({ groups, bounded: true });
        // Every read of the log is by id (heads) or keyed by partition and bounded in sequence numbers (lag).
        for (const c of eventQueries(sample).filter((q) => typeof filterOf(q)['_id'] !== 'string')) {
          const f = filterOf(c);
          const clauses = ((f['$or'] as Array<Record<string, unknown>> | undefined) ?? [f]).map(
            (x) => x['seq'] as { $gt?: number; $lte?: number } | undefined,
          );
          expect({
            command: c.name,
            keyed: clauses.every((seq) => seq?.$gt !== undefined && seq.$lte !== undefined && seq.$lte - seq.$gt <= LAG_WINDOW),
          }).toEqual({
            command: c.name,
            keyed: true,
          });
        }
      }
    } finally {
      await recorder.close();
    }
  });
});
