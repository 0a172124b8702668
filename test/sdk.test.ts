/**
 * The SDK in Node (with `ws`) against real gateways and a real drainer.
 */
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { setTimeout as sleep } from 'node:timers/promises';
import { HubClientError, createClient, type HubClient } from '../internal/sdk/index.js';
import { useTestDb } from './harness/db.js';
import { rootToken, startDrainer, startGateway, startHub, testToken, type TestHub } from './harness/hub.js';
import { eventually } from './harness/process.js';
import { freePort } from './harness/server.js';

interface Topics {
  'orders.created': { id: string; total: number };
  'orders.paid': { id: string };
  'jobs.run': { n: number };
}

const t = useTestDb('sdk');
const clients: HubClient<Topics>[] = [];
const stops: Array<() => Promise<void>> = [];
let n = 0;

function client(
  port: number,
  getToken: () => Promise<string> = () => rootToken(),
  extra: Partial<Parameters<typeof createClient>[0]> = {},
): HubClient<Topics> {
  const c = createClient<Topics>({
    url: `ws://127.0.0.1:${port}/ws`,
    getToken,
    reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
    ...extra,
  });
  clients.push(c);
  return c;
}
async function hub(env: Record<string, string> = {}): Promise<TestHub> {
  const h = await startHub(t.url, `${t.name}_${++n}`, env);
  stops.push(() => h.stop());
  return h;
}

afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  for (const s of stops.splice(0).reverse()) await s();
});

it('publishes durably and delivers typed payloads to a live subscription', async () => {
  const h = await hub();
  const c = client(h.port);
  const got: Array<{ id: string; total: number }> = [];
  const sub = await c.subscribe('orders.created', {}, (payload, event) => {
    got.push(payload);
    expect(event.createdAt).toBeInstanceOf(Date);
  });
  const id = await c.publish('orders.created', { id: 'o1', total: 5 }, { key: 'o1' });
  expect(id).toMatch(/^[0-9a-f-]{36}$/);
  await eventually(async () => got.length === 1, 10_000, 'the event');
  expect(got[0]).toEqual({ id: 'o1', total: 5 });
  await sub.unsubscribe();
  await c.publish('orders.created', { id: 'o2', total: 6 });
  await sleep(300);
  expect(got).toHaveLength(1);
});

it('acks group deliveries when the handler resolves and nacks when it throws', async () => {
  const h = await hub({ REDELIVERY_BASE: '50ms' });
  const c = client(h.port);
  const seen: Array<[number, number]> = [];
  await c.subscribe('jobs.*', { group: 'sdk-workers' }, async (payload, event) => {
    seen.push([payload.n, event.seq]);
    if (payload.n === 2 && seen.filter(([x]) => x === 2).length === 1) throw new Error('transient');
  });
  for (let i = 1; i <= 3; i++) await c.publish('jobs.run', { n: i }, { key: 'same' });
  await eventually(async () => seen.length === 4, 10_000, 'three events and one redelivery');
  // Per-key order holds through the redelivery: 1, 2 (failed), 2 (again), 3.
  expect(seen.map(([x]) => x)).toEqual([1, 2, 2, 3]);
  await eventually(
    async () => {
      const cursors = await t.client.db(h.db).collection('group_cursors').find({ group: 'sdk-workers' }).toArray();
      return cursors.reduce((s, d) => s + (d['seq'] as number), 0) === 3;
    },
    10_000,
    'the cursor to cover all three',
  );
});

it('streams deliveries as an async iterator, acking as it goes, and unsubscribes on break', async () => {
  const h = await hub();
  const c = client(h.port);
  const stream = c.stream('orders.*', { group: 'sdk-stream' });
  const first = stream.next();
  await sleep(200);
  for (let i = 0; i < 3; i++) await c.publish('orders.paid', { id: `p${i}` }, { key: `p${i}` });
  const ids: string[] = [(await first).value!.event.payload.id as string];
  for await (const d of stream) {
    ids.push((d.event.payload as { id: string }).id);
    if (ids.length === 3) break;
  }
  expect(ids.sort()).toEqual(['p0', 'p1', 'p2']);
});

it('rejects with typed errors carrying the code (and the event id for publishes)', async () => {
  const h = await hub();
  const c = client(h.port, () => testToken({ scopes: 'publish:orders.created subscribe:orders.created' }));
  const err = await c.publish('orders.paid', { id: 'x' }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(HubClientError);
  expect(err).toMatchObject({ code: 'FORBIDDEN' });
  expect((err as HubClientError).eventId).toMatch(/-/);
  await expect(c.subscribe('orders.**', {}, () => undefined)).rejects.toMatchObject({ code: 'FORBIDDEN' });
  await expect(c.publish('bad..topic' as 'orders.created', { id: 'x', total: 1 })).rejects.toMatchObject({ code: 'INVALID_TOPIC' });
  await c.close();
  await expect(c.publish('orders.created', { id: 'y', total: 1 })).rejects.toMatchObject({ code: 'CLOSED' });
});

it('reconnects after the gateway restarts, resubscribes, and completes a publish made while it was down', async () => {
  const db = `${t.name}_restart`;
  const port = await freePort();
  const drainer = await startDrainer(t.url, db);
  stops.push(() => drainer.stop());
  let gateway = await startGateway(t.url, db, { GATEWAY_PORT: String(port) });
  stops.push(() => gateway.stop());
  const states: string[] = [];
  const c = client(port, () => rootToken(), { onStateChange: (s) => void states.push(s) });
  const got: number[] = [];
  await c.subscribe('jobs.run', {}, (p) => void got.push(p.n));
  await c.publish('jobs.run', { n: 1 });
  await eventually(async () => got.length === 1, 10_000, 'the first event');

  await gateway.stop();
  await eventually(async () => c.state === 'reconnecting', 5_000, 'the client to notice');
  const during = c.publish('jobs.run', { n: 2 }, { eventId: 'while-down' });
  await sleep(300);
  gateway = await startGateway(t.url, db, { GATEWAY_PORT: String(port) });
  expect(await during).toBe('while-down');
  await c.publish('jobs.run', { n: 3 });
  await eventually(async () => got.includes(3), 10_000, 'events after the restart');
  expect(states).toContain('reconnecting');
  expect(c.state).toBe('open');
  // The retried publish was stored once.
  expect(
    await t.client
      .db(db)
      .collection('events')
      .countDocuments({ _id: 'while-down' as never }),
  ).toBe(1);
});

it('refreshes the token before it expires and keeps the connection', async () => {
  const h = await hub();
  let calls = 0;
  const c = client(
    h.port,
    async () => {
      calls++;
      return testToken({ scopes: 'publish:** subscribe:**' }, { ttlS: 3 });
    },
    { refreshBeforeMs: 1_500 },
  );
  const got: number[] = [];
  await c.subscribe('jobs.run', {}, (p) => void got.push(p.n));
  await sleep(4_500);
  expect(calls).toBeGreaterThanOrEqual(3);
  expect(c.state).toBe('open');
  await c.publish('jobs.run', { n: 7 });
  await eventually(async () => got.includes(7), 10_000, 'delivery after the first token expired');
}, 20_000);

it('closes on abort and rejects what was pending', async () => {
  const ac = new AbortController();
  const port = await freePort(); // nothing listens: the publish can only wait
  const c = client(port, () => rootToken(), { signal: ac.signal });
  const pending = c.publish('jobs.run', { n: 1 });
  ac.abort();
  await expect(pending).rejects.toMatchObject({ code: 'CLOSED' });
  expect(c.state).toBe('closed');
});

it('builds a browser bundle under 10 KB gzipped with no require()', () => {
  const bundle = readFileSync('dist/sdk/outbox-hub-sdk.min.js');
  expect(gzipSync(bundle, { level: 9 }).length).toBeLessThan(10 * 1024);
  expect(bundle.toString()).not.toMatch(/\brequire\(/);
});
