/**
 * The SDK in Node (with `ws`) against real gateways and a real drainer.
 */
import { getEventListeners } from 'node:events';
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
  await eventually(() => got.length === 1, 10_000, 'the event');
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
  await c.subscribe('jobs.*', { group: 'sdk-workers' }, (payload, event) => {
    seen.push([payload.n, event.seq]);
    if (payload.n === 2 && seen.filter(([x]) => x === 2).length === 1) throw new Error('transient');
  });
  for (let i = 1; i <= 3; i++) await c.publish('jobs.run', { n: i }, { key: 'same' });
  await eventually(() => seen.length === 4, 10_000, 'three events and one redelivery');
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
  const ids: string[] = [(await first).value!.event.payload.id];
  for await (const d of stream) {
    ids.push(d.event.payload.id);
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
  await eventually(() => got.length === 1, 10_000, 'the first event');

  await gateway.stop();
  await eventually(() => c.state === 'reconnecting', 5_000, 'the client to notice');
  const during = c.publish('jobs.run', { n: 2 }, { eventId: 'while-down' });
  await sleep(300);
  gateway = await startGateway(t.url, db, { GATEWAY_PORT: String(port) });
  expect(await during).toBe('while-down');
  await c.publish('jobs.run', { n: 3 });
  await eventually(() => got.includes(3), 10_000, 'events after the restart');
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
  await eventually(() => got.includes(7), 10_000, 'delivery after the first token expired');
}, 20_000);

it('closes on abort and rejects what was pending', async () => {
  const ac = new AbortController();
  const port = await freePort(); // nothing listens: the publish can only wait
  const c = client(port, () => rootToken(), { signal: ac.signal });
  const pending = c.publish('jobs.run', { n: 1 });
  ac.abort();
  await expect(pending).rejects.toMatchObject({ code: 'CLOSED' });
  expect(c.state).toBe('closed');
  await expect(c.ready()).rejects.toMatchObject({ code: 'CLOSED' });
  expect(await c.closed()).toBeUndefined();
  expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
});

it('settles ready() and closed() on close() before connecting, and on a signal aborted before creation', async () => {
  const port = await freePort();
  const c = client(port);
  const ready = c.ready();
  await c.close();
  await expect(ready).rejects.toMatchObject({ code: 'CLOSED' });
  expect(await c.closed()).toBeUndefined();

  const ac = new AbortController();
  ac.abort();
  const states: string[] = [];
  const aborted = client(port, () => rootToken(), { signal: ac.signal, onStateChange: (s) => void states.push(s) });
  expect(aborted.state).toBe('closed');
  expect(states).toEqual(['closed']);
  await expect(aborted.ready()).rejects.toMatchObject({ code: 'CLOSED' });
  expect(await aborted.closed()).toBeUndefined();
  await expect(aborted.publish('jobs.run', { n: 1 })).rejects.toMatchObject({ code: 'CLOSED' });
  expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
});

it('removes a request abort listener when the request settles', async () => {
  const h = await hub();
  const c = client(h.port);
  const ac = new AbortController();
  for (let i = 0; i < 20; i++) await c.publish('jobs.run', { n: i }, { signal: ac.signal });
  expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
  // A failed request lets go of its listener too.
  const limited = client(h.port, () => testToken({ scopes: 'publish:orders.created' }));
  await expect(limited.publish('jobs.run', { n: 0 }, { signal: ac.signal })).rejects.toMatchObject({ code: 'FORBIDDEN' });
  expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
  // And an aborted one rejects with ABORTED.
  await c.close();
  const port = await freePort();
  const waiting = client(port);
  const abortable = new AbortController();
  const publish = waiting.publish('jobs.run', { n: 0 }, { signal: abortable.signal });
  abortable.abort();
  await expect(publish).rejects.toMatchObject({ code: 'ABORTED' });
  expect(getEventListeners(abortable.signal, 'abort')).toHaveLength(0);
  expect(waiting.state).not.toBe('closed');
});

it('drains: finishes running group handlers and their acks, leaves undelivered events to other members, then closes', async () => {
  const h = await hub({ REDELIVERY_BASE: '50ms', ACK_TIMEOUT: '30s' });
  const group = 'drain-workers';
  const a = client(h.port);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const handledByA: number[] = [];
  await a.subscribe('jobs.*', { group, maxInFlight: 1 }, async (p) => {
    if (p.n === 1) await gate;
    handledByA.push(p.n);
  });
  await a.ready();
  await a.publish('jobs.run', { n: 1 }, { key: 'k' });
  await a.publish('jobs.run', { n: 2 }, { key: 'k' });
  await sleep(300); // the first delivery is in A's handler, held by the gate
  expect(handledByA).toEqual([]);

  const drained = a.drain();
  expect(a.state).toBe('draining');
  // Subscribing is refused at once; publishing still works until the subscriptions are drained.
  await expect(a.subscribe('jobs.*', {}, () => undefined)).rejects.toMatchObject({ code: 'DRAINING' });
  await sleep(200);
  expect(a.state).toBe('draining');
  release();
  await drained;
  expect(a.state).toBe('closed');
  expect(await a.closed()).toBeUndefined();
  expect(handledByA).toEqual([1]);
  await expect(a.publish('jobs.run', { n: 9 })).rejects.toMatchObject({ code: 'CLOSED' });

  // Event 1 was acked during the drain; event 2 was never started by A and goes to the next member.
  const b = client(h.port);
  const handledByB: Array<[number, number]> = [];
  await b.subscribe('jobs.*', { group }, (p, e) => void handledByB.push([p.n, e.seq]));
  await eventually(() => handledByB.length === 1, 10_000, 'event 2 at the next member');
  await sleep(500);
  expect(handledByB.map(([n]) => n)).toEqual([2]);
});

it('drains: handles the live events already received before closing', async () => {
  const h = await hub();
  const c = client(h.port);
  const got: number[] = [];
  await c.subscribe('jobs.run', {}, async (p) => {
    await sleep(200);
    got.push(p.n);
  });
  for (let i = 0; i < 5; i++) await c.publish('jobs.run', { n: i }, { key: 'k' });
  await eventually(() => got.length >= 1, 10_000, 'the first event handled');
  await sleep(300); // the others have arrived and wait in the handler queue
  expect(got.length).toBeLessThan(5);
  await c.drain();
  expect(got).toEqual([0, 1, 2, 3, 4]);
  expect(c.state).toBe('closed');
});

it('drains: completes the publishes in flight, including one waiting for a reconnect', async () => {
  const db = `${t.name}_drainpub`;
  const port = await freePort();
  const drainer = await startDrainer(t.url, db);
  stops.push(() => drainer.stop());
  let gateway = await startGateway(t.url, db, { GATEWAY_PORT: String(port) });
  stops.push(() => gateway.stop());
  const c = client(port);
  await c.ready();
  const publishes = Array.from({ length: 10 }, (_, i) => c.publish('jobs.run', { n: i }, { key: `k${i % 3}` }));
  await Promise.all(publishes);
  await gateway.stop();
  await eventually(() => c.state === 'reconnecting', 5_000, 'the client to notice');
  const late = c.publish('jobs.run', { n: 10 }, { eventId: 'during-drain' });
  const drained = c.drain();
  await sleep(300);
  expect(c.state).toBe('draining');
  gateway = await startGateway(t.url, db, { GATEWAY_PORT: String(port) });
  expect(await late).toBe('during-drain');
  await drained;
  expect(c.state).toBe('closed');
  await expect(c.publish('jobs.run', { n: 99 })).rejects.toMatchObject({ code: 'CLOSED' });
  const ids = [...(await Promise.all(publishes)), 'during-drain'];
  await eventually(
    async () =>
      (await t.client
        .db(db)
        .collection('events')
        .countDocuments({ _id: { $in: ids as never[] } })) === 11,
    10_000,
    'every publish to reach the log',
  );
});

it('drains an async iterator: the delivery in hand is acked when the loop asks for the next, then the loop ends', async () => {
  const h = await hub();
  const c = client(h.port);
  const stream = c.stream('orders.*', { group: 'drain-stream' });
  const first = stream.next();
  await sleep(200);
  await c.publish('orders.paid', { id: 'p0' }, { key: 'p0' });
  const d = (await first).value!;
  const drained = c.drain();
  await sleep(100);
  expect(c.state).toBe('draining');
  expect(await stream.next()).toEqual({ value: undefined, done: true });
  await drained;
  expect(c.state).toBe('closed');
  await eventually(
    async () => {
      const cursors = await t.client.db(h.db).collection('group_cursors').find({ group: 'drain-stream' }).toArray();
      return cursors.reduce((s, x) => s + (x['seq'] as number), 0) === d.event.seq;
    },
    10_000,
    'the drained delivery to be acked',
  );
});

it('bounds a drain: past timeoutMs it closes, rejects with TIMEOUT and closed() says so', async () => {
  const h = await hub();
  const c = client(h.port);
  await c.subscribe('jobs.*', { group: 'stuck' }, () => new Promise(() => undefined));
  await c.publish('jobs.run', { n: 1 });
  await sleep(300);
  const started = Date.now();
  await expect(c.drain({ timeoutMs: 400 })).rejects.toMatchObject({ code: 'TIMEOUT' });
  expect(Date.now() - started).toBeLessThan(5_000);
  expect(c.state).toBe('closed');
  expect(await c.closed()).toMatchObject({ code: 'TIMEOUT' });
  // A second call returns the same outcome instead of starting over.
  await expect(c.drain()).rejects.toMatchObject({ code: 'TIMEOUT' });
});

it('builds a browser bundle under 10 KB gzipped with no require() and no ws', () => {
  const bundle = readFileSync('dist/sdk/outbox-hub-sdk.min.js');
  expect(gzipSync(bundle, { level: 9 }).length).toBeLessThan(10 * 1024);
  expect(bundle.toString()).not.toMatch(/\brequire\(/);
  // `ws` is aliased away: a bundler taking this build never looks for it.
  expect(bundle.toString()).not.toMatch(/["']ws["']/);
});
