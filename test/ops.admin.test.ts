/**
 * The ops routes the command line needs beyond the dashboard's, in process
 * against the test server: time-based positions (`GET /api/positions`, one
 * index seek per partition), group resets (`POST /api/groups/:group/reset`,
 * refused while the group has consumers, fenced like every cursor write) and
 * one group's dead letters.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Db } from 'mongodb';
import { MongoEventLog, migrateEventLog, type EventInput } from '../internal/eventlog/index.js';
import { MongoGroupStore, groupLeaseGroup, migrateGroups } from '../internal/groupstore/index.js';
import { MongoLeaseStore, migrateLeases } from '../internal/lease/index.js';
import { createLogger } from '../internal/log/index.js';
import { OpsApp, loadOpsConfig } from '../internal/ops/index.js';
import { migrateOutbox } from '../internal/outbox/index.js';
import { createRegistry } from '../internal/telemetry/index.js';
import { testCapabilities } from './harness/capabilities.js';
import { useTestDb } from './harness/db.js';

const t = useTestDb('opsadmin');
const ADMIN = 'admin-token-0123456789';
const READ = 'read-token-0123456789abc';
let app: OpsApp;
let url: string;
let db: Db;
let log: MongoEventLog;
let groups: MongoGroupStore;
let leases: MongoLeaseStore;
/** Times between the appends: before everything, between the first and second batches, after all. */
const marks: Date[] = [];

const ev = (id: string, topic = 'orders.created'): EventInput => ({
  id,
  topic,
  key: id,
  payload: { id },
  headers: {},
  createdAt: new Date(),
});

beforeAll(async () => {
  db = t.client.db(`${t.name}_a`);
  await migrateOutbox(db, { partitions: 4 });
  await migrateEventLog(db);
  await migrateLeases(db);
  await migrateGroups(db);
  log = new MongoEventLog(db);
  groups = new MongoGroupStore(db);
  leases = new MongoLeaseStore(db);
  marks.push(new Date());
  await sleep(20);
  await log.append(0, 1, [ev('a1'), ev('a2')]);
  await log.append(1, 1, [ev('b1')]);
  await sleep(20);
  marks.push(new Date());
  await sleep(20);
  await log.append(0, 1, [ev('a3'), ev('a4', 'invoices.sent')]);
  await sleep(20);
  marks.push(new Date());
  app = new OpsApp(
    loadOpsConfig({
      MONGO_URL: t.url,
      MONGO_DB: db.databaseName,
      OPS_HOST: '127.0.0.1',
      OPS_PORT: '0',
      OUTBOX_PARTITIONS: '4',
      OPS_SAMPLE_INTERVAL: '200ms',
      OPS_ADMIN_TOKEN: ADMIN,
      OPS_READ_TOKEN: READ,
    }),
    { log: createLogger({ level: 'error' }), registry: createRegistry('ops') },
  );
  await app.start();
  url = `http://127.0.0.1:${app.port}`;
});
afterAll(async () => {
  await app?.stop();
});

async function call<T = Record<string, unknown>>(
  method: string,
  path: string,
  options: { token?: string; body?: unknown; raw?: string } = {},
): Promise<{ status: number; body: T }> {
  const headers: Record<string, string> = { authorization: `Bearer ${options.token ?? ADMIN}` };
  if (options.body !== undefined || options.raw !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url + path, {
    method,
    headers,
    ...(options.raw !== undefined ? { body: options.raw } : options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as T };
}

describe('GET /api/positions', () => {
  it('answers, per partition, the last sequence published before the time', async () => {
    const at = (d: Date) => `/api/positions?at=${encodeURIComponent(d.toISOString())}`;
    expect((await call('GET', at(marks[0]!), { token: READ })).body).toEqual({
      at: marks[0]!.toISOString(),
      positions: { '0': 0, '1': 0, '2': 0, '3': 0 },
    });
    expect((await call('GET', at(marks[1]!), { token: READ })).body['positions']).toEqual({ '0': 2, '1': 1, '2': 0, '3': 0 });
    expect((await call('GET', at(marks[2]!), { token: READ })).body['positions']).toEqual({ '0': 4, '1': 1, '2': 0, '3': 0 });
    // Offsets are times too.
    const shifted = marks[1]!.toISOString().replace('Z', '+00:00');
    expect((await call('GET', `/api/positions?at=${encodeURIComponent(shifted)}`)).body['positions']).toEqual({
      '0': 2,
      '1': 1,
      '2': 0,
      '3': 0,
    });
  });

  it('refuses a missing, local or malformed time, and a caller without the read token', async () => {
    for (const q of ['', '?at=yesterday', '?at=2026-11-25T10:42', '?at=2026-13-01T00:00:00Z', '?at=1700000000000']) {
      const r = await call('GET', `/api/positions${q}`);
      expect([q, r.status, r.body['error'], r.body['parameter']]).toEqual([q, 400, 'INVALID_PARAMETER', 'at']);
    }
    expect((await call('GET', `/api/positions?at=${marks[0]!.toISOString()}`, { token: 'wrong-token-0123456789' })).status).toBe(401);
  });

  it('finds each position with an index seek on (partition, publishedAt) where the server uses indexes', async () => {
    const caps = testCapabilities();
    if (caps.flavor === 'ferretdb' || caps.flavor === 'mongo-java-server') {
      process.stderr.write(`\n  SKIPPED (${caps.flavor} plans no index): the index check of seqBefore\n`);
      return;
    }
    const plan = JSON.stringify(
      await db
        .collection('events')
        .find({ partition: 0, publishedAt: { $lt: new Date() } })
        .sort({ publishedAt: -1, seq: -1 })
        .limit(1)
        .explain(),
    );
    expect(plan).toContain('partition_publishedAt_seq');
    expect(plan).not.toContain('COLLSCAN');
  });
});

describe('POST /api/groups/:group/reset', () => {
  it('refuses an unknown group, a bad target or body, and a caller without the admin token', async () => {
    expect(await call('POST', '/api/groups/nope/reset', { body: { to: 'earliest' } })).toMatchObject({
      status: 404,
      body: { error: 'NOT_FOUND' },
    });
    await groups.register('shape', 'orders.*');
    for (const body of [{}, { to: 'yesterday' }, { to: '2026-11-25T10:42' }, { to: 'earliest', force: 'yes' }, [1], 'earliest']) {
      const r = await call('POST', '/api/groups/shape/reset', { body });
      expect([JSON.stringify(body), r.status, r.body['error']]).toEqual([JSON.stringify(body), 400, 'INVALID_PARAMETER']);
    }
    expect((await call('POST', '/api/groups/shape/reset', { raw: '{"to":' })).body).toMatchObject({ error: 'INVALID_PARAMETER' });
    expect((await call('POST', '/api/groups/shape/reset', { body: { to: 'earliest' }, token: READ })).status).toBe(401);
  });

  it('moves every cursor to a time, to the head and back to the start, taking and releasing each partition lease', async () => {
    await groups.register('billing', 'orders.*');
    await groups.saveCursor('billing', 0, 1, 0);
    const r = await call<{ to: string; partitions: Array<{ partition: number; previous: number; cursor: number; fenced: boolean }> }>(
      'POST',
      '/api/groups/billing/reset',
      { body: { to: marks[1]!.toISOString() } },
    );
    expect(r.status).toBe(200);
    expect(r.body.to).toBe(marks[1]!.toISOString());
    expect(r.body.partitions.map((p) => [p.partition, p.previous, p.cursor, p.fenced])).toEqual([
      [0, 1, 2, false],
      [1, 0, 1, false],
      [2, 0, 0, false],
      [3, 0, 0, false],
    ]);
    expect(await groups.loadCursors('billing')).toEqual(
      new Map([
        [0, 2],
        [1, 1],
        [2, 0],
        [3, 0],
      ]),
    );
    // The reset's leases are released: a gateway takes each partition at once, under a newer epoch, and may save.
    const lease = await leases.acquire(groupLeaseGroup('billing'), 0, 'gateway-1', 10_000);
    expect(lease?.epoch).toBe(2);
    expect(await groups.saveCursor('billing', 0, 3, lease!.epoch)).toBe(true);
    await leases.release(lease!);
    expect((await call('POST', '/api/groups/billing/reset', { body: { to: 'latest' } })).status).toBe(200);
    expect(await groups.loadCursors('billing')).toEqual(
      new Map([
        [0, 4],
        [1, 1],
        [2, 0],
        [3, 0],
      ]),
    );
    expect((await call('POST', '/api/groups/billing/reset', { body: { to: 'earliest' } })).status).toBe(200);
    expect(await groups.loadCursors('billing')).toEqual(
      new Map([
        [0, 0],
        [1, 0],
        [2, 0],
        [3, 0],
      ]),
    );
  });

  it('is refused while the group has consumers; forced, it fences the gateway that holds a partition', async () => {
    await groups.register('live', 'orders.*');
    const leaseGroup = groupLeaseGroup('live');
    // A gateway serving the group: present, holding partition 0, its cursor saved at 4.
    await leases.heartbeat(leaseGroup, 'gateway-1', 30_000);
    const held = await leases.acquire(leaseGroup, 0, 'gateway-1', 30_000);
    expect(await groups.saveCursor('live', 0, 4, held!.epoch)).toBe(true);
    const refused = await call('POST', '/api/groups/live/reset', { body: { to: 'earliest' } });
    expect(refused).toMatchObject({ status: 409, body: { error: 'GROUP_ACTIVE' } });
    expect(refused.body['message']).toMatch(/gateway-1/);
    expect(await groups.loadCursor('live', 0)).toBe(4);

    const forced = await call<{ forced: boolean; partitions: Array<{ partition: number; cursor: number; fenced: boolean }> }>(
      'POST',
      '/api/groups/live/reset',
      { body: { to: 'earliest', force: true } },
    );
    expect(forced.status).toBe(200);
    expect(forced.body.forced).toBe(true);
    expect(forced.body.partitions.map((p) => [p.partition, p.cursor, p.fenced])).toEqual([
      [0, 0, true],
      [1, 0, false],
      [2, 0, false],
      [3, 0, false],
    ]);
    // The holder's next write is refused (it drops the partition, as on any fencing): the reset stays.
    expect(await groups.saveCursor('live', 0, 5, held!.epoch)).toBe(false);
    expect(await groups.markDelivered('live', 0, 70, held!.epoch)).toBe(false);
    expect(await groups.loadCursor('live', 0)).toBe(0);
    // Its lease lapses (or is released); the next owner's epoch is the one the reset wrote under, and it carries on.
    await leases.release(held!);
    const next = await leases.acquire(leaseGroup, 0, 'gateway-2', 30_000);
    expect(next!.epoch).toBe(held!.epoch + 1);
    expect(await groups.loadCursor('live', 0)).toBe(0);
    expect(await groups.saveCursor('live', 0, 1, next!.epoch)).toBe(true);
    await leases.release(next!);
    await leases.leave(leaseGroup, 'gateway-1');
  });

  it('is refused while a gateway that left still holds a partition lease, unless forced', async () => {
    await groups.register('leaving', 'orders.*');
    const held = await leases.acquire(groupLeaseGroup('leaving'), 2, 'gateway-gone', 30_000);
    await groups.saveCursor('leaving', 2, 0, held!.epoch);
    const r = await call('POST', '/api/groups/leaving/reset', { body: { to: 'latest' } });
    expect(r).toMatchObject({ status: 409, body: { error: 'GROUP_ACTIVE' } });
    expect(r.body['message']).toMatch(/partitions 2 /);
    // Nothing changed, and the leases the refused reset took were given back.
    expect(await groups.loadCursors('leaving')).toEqual(new Map([[2, 0]]));
    const free = await leases.acquire(groupLeaseGroup('leaving'), 1, 'gateway-new', 30_000);
    expect(free).not.toBeNull();
    await leases.release(free!);
    expect((await call('POST', '/api/groups/leaving/reset', { body: { to: 'latest', force: true } })).status).toBe(200);
    expect(await groups.loadCursors('leaving')).toEqual(
      new Map([
        [0, 4],
        [1, 1],
        [2, 0],
        [3, 0],
      ]),
    );
    expect(await groups.saveCursor('leaving', 2, 9, held!.epoch)).toBe(false);
  });
});

describe('GET /api/groups/:group/dead-letters', () => {
  it("lists one group's dead letters from the store, and refuses an unknown group", async () => {
    await groups.register('dl', 'orders.*');
    const [e] = await log.read({ partition: 0, limit: 1 });
    await groups.deadLetter('dl', e!, 5, 'nacked');
    const r = await call<{
      group: string;
      letters: Array<{ event: { id: string; publishedAt: string }; deliveries: number; reason: string }>;
    }>('GET', '/api/groups/dl/dead-letters?limit=10', { token: READ });
    expect(r.status).toBe(200);
    expect(r.body.letters).toHaveLength(1);
    expect(r.body.letters[0]).toMatchObject({ event: { id: 'a1' }, deliveries: 5, reason: 'nacked' });
    expect(typeof r.body.letters[0]?.event.publishedAt).toBe('string');
    expect((await call('GET', '/api/groups/none/dead-letters')).status).toBe(404);
    expect((await call('GET', '/api/groups/dl/dead-letters?limit=0')).status).toBe(400);
  });
});
