/**
 * The gateway over real sockets, with a real drainer, against the test server.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CloseCode, type ServerFrame } from '../internal/gateway/index.js';
import { MongoGroupStore } from '../internal/groupstore/index.js';
import { MongoLeaseStore } from '../internal/lease/index.js';
import { useTestDb } from './harness/db.js';
import { rootToken, startHub, testToken, type TestHub } from './harness/hub.js';
import { eventually } from './harness/process.js';
import { TestClient } from './harness/ws-client.js';

const t = useTestDb('gateway');
const clients: TestClient[] = [];
const hubs: TestHub[] = [];
let hubCount = 0;

async function hub(env: Record<string, string> = {}, name = `${t.name}_${++hubCount}`): Promise<TestHub> {
  const h = await startHub(t.url, name, env);
  hubs.push(h);
  return h;
}
async function client(port: number, token?: string): Promise<TestClient> {
  const c = token ? await TestClient.authed(port, token) : await TestClient.connect(port);
  clients.push(c);
  return c;
}
async function metrics(h: TestHub): Promise<string> {
  return (await fetch(`http://127.0.0.1:${h.gateway.telemetryPort}/metrics`)).text();
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.terminate();
  for (const h of hubs.splice(0)) await h.stop();
});

describe('protocol', () => {
  it('answers PING, refuses requests before AUTH, and reports malformed frames with codes', async () => {
    const h = await hub();
    const c = await client(h.port);
    expect(await c.request({ op: 'PING' })).toMatchObject({ op: 'OK' });
    expect(await c.request({ op: 'PUBLISH', topic: 'a.b', payload: 1 })).toMatchObject({ op: 'ERR', code: 'NOT_AUTHENTICATED' });
    expect(await c.request({ op: 'FROB' })).toMatchObject({ op: 'ERR', code: 'UNKNOWN_OP' });
    expect(await c.request({ op: 'SUBSCRIBE', sub: 'bad sub', topic: 'a' })).toMatchObject({ op: 'ERR', code: 'BAD_FRAME' });
    c.ws.send('{not json');
    expect(await c.waitFor((f) => f.op === 'ERR' && f.id === null && f.code === 'BAD_FRAME')).toBeTruthy();
    c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    await c.waitFor((f) => f.op === 'ERR' && f.message.includes('binary'));
  });

  it('runs requests pipelined behind AUTH after it completes', async () => {
    const h = await hub();
    const c = await client(h.port);
    const token = await rootToken();
    c.ws.send(JSON.stringify({ op: 'AUTH', id: 'a', token }));
    c.ws.send(JSON.stringify({ op: 'SUBSCRIBE', id: 's', sub: 'x', topic: 'p.*' }));
    expect(await c.waitFor((f) => f.op !== 'EVENT' && f.id === 's')).toMatchObject({ op: 'OK', sub: 'x' });
  });

  it('closes after too many malformed frames with the policy-violation code', async () => {
    const h = await hub();
    const c = await client(h.port);
    for (let i = 0; i < 12; i++) c.ws.send('nope');
    expect((await c.closed).code).toBe(CloseCode.POLICY_VIOLATION);
  });

  it('closes an oversized frame with 1009 and refuses a foreign origin and a missing subprotocol', async () => {
    const h = await hub({ MAX_FRAME_BYTES: '2048', ALLOWED_ORIGINS: 'https://app.example' });
    await expect(TestClient.connect(h.port, { origin: 'https://evil.example' })).rejects.toThrow(/403/);
    await expect(TestClient.connect(h.port, { origin: 'https://app.example', protocol: null })).rejects.toThrow();
    const c = await TestClient.connect(h.port, { origin: 'https://app.example' });
    clients.push(c);
    c.ws.send(JSON.stringify({ op: 'PING', id: 'x', pad: 'x'.repeat(4096) }));
    expect((await c.closed).code).toBe(CloseCode.MESSAGE_TOO_LARGE);
  });
});

describe('authentication', () => {
  it('closes a connection that does not AUTH before the deadline', async () => {
    const h = await hub({ AUTH_TIMEOUT: '300ms' });
    const c = await client(h.port);
    expect((await c.closed).code).toBe(CloseCode.AUTH_TIMEOUT);
  });

  it('refuses a bad token with ERR and closes with auth-failed; an expired one with token-expired', async () => {
    const h = await hub();
    const bad = await client(h.port);
    const reply = await bad.request({ op: 'AUTH', token: await testToken({}, { secret: 'another-secret-that-is-long-enough-32b' }) });
    expect(reply).toMatchObject({ op: 'ERR', code: 'AUTH_FAILED', reason: 'SIGNATURE_INVALID' });
    expect((await bad.closed).code).toBe(CloseCode.AUTH_FAILED);
    const old = await client(h.port);
    expect(await old.request({ op: 'AUTH', token: await testToken({}, { ttlS: -120 }) })).toMatchObject({
      code: 'AUTH_FAILED',
      reason: 'TOKEN_EXPIRED',
    });
    expect((await old.closed).code).toBe(CloseCode.TOKEN_EXPIRED);
    const text = await metrics(h);
    expect(text).toMatch(/gateway_auth_failures_total\{reason="SIGNATURE_INVALID",binary="gateway"\} 1/);
    expect(text).toMatch(/gateway_auth_failures_total\{reason="TOKEN_EXPIRED",binary="gateway"\} 1/);
  });

  it('keeps a connection whose token is refreshed, revokes what the new token no longer allows, and closes one left to expire', async () => {
    const h = await hub();
    const scopes = 'subscribe:a.* subscribe:b.* publish:a.* publish:b.*';
    const refreshed = await client(h.port, await testToken({ scopes }, { ttlS: 3 }));
    const lapsed = await client(h.port, await testToken({ scopes }, { ttlS: 3 }));
    expect(await refreshed.request({ op: 'SUBSCRIBE', sub: 'a', topic: 'a.*' })).toMatchObject({ op: 'OK' });
    expect(await refreshed.request({ op: 'SUBSCRIBE', sub: 'b', topic: 'b.*' })).toMatchObject({ op: 'OK' });
    expect(
      await refreshed.request({ op: 'AUTH', token: await testToken({ scopes: 'subscribe:a.* publish:a.* publish:b.*' }, { ttlS: 60 }) }),
    ).toMatchObject({ op: 'OK' });
    expect(await refreshed.waitFor((f) => f.op === 'ERR' && f.code === 'SUBSCRIPTION_REVOKED')).toMatchObject({ sub: 'b' });
    expect((await lapsed.closed).code).toBe(CloseCode.TOKEN_EXPIRED);
    // Past the first token's expiry the refreshed connection still works.
    expect(await refreshed.request({ op: 'PUBLISH', topic: 'a.x', payload: 1 })).toMatchObject({ op: 'OK' });
    expect(await refreshed.request({ op: 'PUBLISH', topic: 'b.x', payload: 2 })).toMatchObject({ op: 'OK' });
    await refreshed.nEvents(1, 'a');
    await sleep(300);
    expect(refreshed.events('b')).toHaveLength(0);
    expect(await refreshed.request({ op: 'AUTH', token: await testToken({ scopes }, { sub: 'mallory' }) })).toMatchObject({
      code: 'AUTH_FAILED',
      reason: 'SUBJECT_CHANGED',
    });
  }, 20_000);
});

describe('publish and live subscriptions', () => {
  it('acknowledges a publish once durable and delivers it to matching subscribers only', async () => {
    const h = await hub();
    const token = await rootToken();
    const pub = await client(h.port, token);
    const wide = await client(h.port, token);
    const narrow = await client(h.port, token);
    expect(await wide.request({ op: 'SUBSCRIBE', sub: 'all', topic: 'orders.**' })).toMatchObject({ op: 'OK', sub: 'all' });
    expect(await narrow.request({ op: 'SUBSCRIBE', sub: 'paid', topic: 'orders.*.paid' })).toMatchObject({ op: 'OK' });
    const ok = await pub.request({ op: 'PUBLISH', topic: 'orders.eu.created', key: 'o1', payload: { n: 1 }, headers: { trace: 't1' } });
    expect(ok).toMatchObject({ op: 'OK' });
    const eventId = (ok as unknown as { eventId: string }).eventId;
    const db = t.client.db(h.db);
    // Durable at OK: pending in its partition, or already drained (the drainer appends before it deletes:
    // looking in the outbox first, then the log, cannot miss it).
    const partition = (ok as unknown as { partition: number }).partition;
    const inOutbox = await db.collection(`outbox_p${partition}`).countDocuments({ _id: eventId as never });
    expect(inOutbox + (await db.collection('events').countDocuments({ _id: eventId as never }))).toBeGreaterThanOrEqual(1);
    await eventually(
      async () =>
        (await db.collection(`outbox_p${partition}`).countDocuments({ _id: eventId as never })) === 0 &&
        (await db.collection('events').countDocuments({ _id: eventId as never })) === 1,
      10_000,
      'the message to be drained',
    );
    await pub.request({ op: 'PUBLISH', topic: 'orders.eu.paid', key: 'o1', payload: { n: 2 } });
    const [first, second] = await wide.nEvents(2, 'all');
    expect(first?.event).toMatchObject({
      id: eventId,
      topic: 'orders.eu.created',
      key: 'o1',
      payload: { n: 1 },
      headers: { trace: 't1' },
      seq: 1,
    });
    expect(second?.event).toMatchObject({ topic: 'orders.eu.paid', seq: 2 });
    const [paid] = await narrow.nEvents(1, 'paid');
    expect(paid?.event.topic).toBe('orders.eu.paid');
    await sleep(200);
    expect(narrow.events()).toHaveLength(1);
    expect(await metrics(h)).toMatch(/gateway_publish_to_deliver_seconds_count\{binary="gateway"\} 3/);
  });

  it('is idempotent for a retried eventId and refuses a reused one', async () => {
    const h = await hub();
    const c = await client(h.port, await rootToken());
    const frame = { op: 'PUBLISH', topic: 'pay.done', key: 'k', payload: 1, eventId: 'pay-42' };
    expect(await c.request(frame)).toMatchObject({ op: 'OK', eventId: 'pay-42' });
    expect(await c.request(frame)).toMatchObject({ op: 'OK', eventId: 'pay-42', duplicate: true });
    expect(await c.request({ ...frame, topic: 'pay.other' })).toMatchObject({ op: 'ERR', code: 'DUPLICATE_ID' });
  });

  it('enforces the ACL: no publish outside grants, no wide filter under a narrow grant, deny wins', async () => {
    const h = await hub();
    const c = await client(
      h.port,
      await testToken({
        scopes: ['publish:orders.*', 'subscribe:orders.*'],
        policy: { deny: [{ action: 'subscribe', topic: 'orders.secret' }] },
      }),
    );
    expect(await c.request({ op: 'PUBLISH', topic: 'invoices.created', payload: 1 })).toMatchObject({ code: 'FORBIDDEN' });
    expect(await c.request({ op: 'PUBLISH', topic: 'orders.*', payload: 1 })).toMatchObject({ code: 'INVALID_TOPIC' });
    expect(await c.request({ op: 'SUBSCRIBE', sub: 's1', topic: 'orders.**' })).toMatchObject({ code: 'FORBIDDEN' });
    expect(await c.request({ op: 'SUBSCRIBE', sub: 's2', topic: 'orders.*' })).toMatchObject({ code: 'FORBIDDEN' });
    expect(await c.request({ op: 'SUBSCRIBE', sub: 's3', topic: 'orders.public' })).toMatchObject({ op: 'OK' });
    expect(await c.request({ op: 'SUBSCRIBE', sub: 's4', topic: 'orders..x' })).toMatchObject({ code: 'INVALID_PATTERN' });
    expect(await c.request({ op: 'PUBLISH', topic: 'orders.created', payload: 1 })).toMatchObject({ op: 'OK' });
    expect(await metrics(h)).toMatch(/gateway_acl_denials_total\{op="SUBSCRIBE",binary="gateway"\} 2/);
  });

  it('replays from the earliest event or from a sequence, then continues live in order', async () => {
    const h = await hub({ OUTBOX_PARTITIONS: '1' });
    const c = await client(h.port, await rootToken());
    const tail = await client(h.port, await rootToken());
    await tail.request({ op: 'SUBSCRIBE', sub: 'live', topic: 'r.x' });
    for (let i = 1; i <= 5; i++) await c.request({ op: 'PUBLISH', topic: 'r.x', key: 'k', payload: i });
    await tail.nEvents(5, 'live');
    expect(await tail.request({ op: 'SUBSCRIBE', sub: 'all', topic: 'r.*', from: 'earliest' })).toMatchObject({ op: 'OK' });
    expect(await tail.request({ op: 'SUBSCRIBE', sub: 'after3', topic: 'r.x', from: { '0': 3 } })).toMatchObject({ op: 'OK' });
    await c.request({ op: 'PUBLISH', topic: 'r.x', key: 'k', payload: 6 });
    expect((await tail.nEvents(6, 'all')).map((f) => f.event.payload)).toEqual([1, 2, 3, 4, 5, 6]);
    expect((await tail.nEvents(3, 'after3')).map((f) => f.event.seq)).toEqual([4, 5, 6]);
  });

  it('stops delivering after UNSUBSCRIBE and limits subscriptions per connection', async () => {
    const h = await hub({ MAX_SUBSCRIPTIONS: '2' });
    const c = await client(h.port, await rootToken());
    await c.request({ op: 'SUBSCRIBE', sub: 'one', topic: 'u.*' });
    expect(await c.request({ op: 'SUBSCRIBE', sub: 'one', topic: 'u.*' })).toMatchObject({ code: 'SUBSCRIPTION_EXISTS' });
    await c.request({ op: 'SUBSCRIBE', sub: 'two', topic: 'v.*' });
    expect(await c.request({ op: 'SUBSCRIBE', sub: 'three', topic: 'w.*' })).toMatchObject({ code: 'TOO_MANY_SUBSCRIPTIONS' });
    expect(await c.request({ op: 'UNSUBSCRIBE', sub: 'one' })).toMatchObject({ op: 'OK' });
    expect(await c.request({ op: 'UNSUBSCRIBE', sub: 'one' })).toMatchObject({ code: 'NO_SUCH_SUBSCRIPTION' });
    await c.request({ op: 'PUBLISH', topic: 'u.x', payload: 1 });
    await c.request({ op: 'PUBLISH', topic: 'v.x', payload: 2 });
    await c.nEvents(1, 'two');
    expect(c.events('one')).toHaveLength(0);
  });
});

describe('limits', () => {
  it('rate-limits publishes per connection and closes a frame flood', async () => {
    const h = await hub({ PUBLISH_RATE: '1', PUBLISH_BURST: '2', FRAME_RATE: '20' });
    const c = await client(h.port, await rootToken());
    const replies = await Promise.all([1, 2, 3].map((n) => c.request({ op: 'PUBLISH', topic: 'rl.x', payload: n })));
    expect(replies.map((r) => (r.op === 'ERR' ? r.code : 'OK')).sort()).toEqual(['OK', 'OK', 'RATE_LIMITED']);
    for (let i = 0; i < 100; i++) c.ws.send(JSON.stringify({ op: 'PING', id: `p${i}` }));
    expect((await c.closed).code).toBe(CloseCode.RATE_LIMITED);
  });

  it('disconnects a slow consumer whose send buffer passes the high-water mark', async () => {
    const h = await hub({ SEND_HIGH_WATER_BYTES: '65536', PUBLISH_RATE: '100000', PUBLISH_BURST: '100000' });
    const slow = await client(h.port, await rootToken());
    await slow.request({ op: 'SUBSCRIBE', sub: 's', topic: 'big.*' });
    // Stop reading: the kernel buffers fill, then the server's send buffer grows.
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const pub = await client(h.port, await rootToken());
    const pad = 'x'.repeat(100_000);
    for (let i = 0; i < 150; i++) await pub.request({ op: 'PUBLISH', topic: 'big.x', payload: { i, pad } });
    await eventually(
      async () => /gateway_closes_total\{code="4008",binary="gateway"\} 1/.test(await metrics(h)),
      30_000,
      'the slow consumer to be closed',
    );
  }, 60_000);
});

describe('consumer groups', () => {
  it("gives each event to one member, keeps per-key order, and redelivers a killed member's events", async () => {
    const h = await hub({ ACK_TIMEOUT: '20s' });
    const token = await rootToken();
    const a = await client(h.port, token);
    const b = await client(h.port, token);
    // a acks everything it gets; b takes its first deliveries and then dies without acking.
    const acked: Array<{ n: number; key: string }> = [];
    a.ws.on('message', (data) => {
      const f = JSON.parse((data as Buffer).toString()) as ServerFrame;
      if (f.op !== 'EVENT') return;
      acked.push({ n: (f.event.payload as { n: number }).n, key: f.event.key ?? '' });
      a.ws.send(JSON.stringify({ op: 'ACK', id: `ack-${acked.length}`, sub: 'g', eventId: f.event.id }));
    });
    expect(await a.request({ op: 'SUBSCRIBE', sub: 'g', topic: 'jobs.*', group: 'workers', maxInFlight: 5 })).toMatchObject({ op: 'OK' });
    expect(await b.request({ op: 'SUBSCRIBE', sub: 'g', topic: 'jobs.*', group: 'workers', maxInFlight: 5 })).toMatchObject({ op: 'OK' });
    const pub = await client(h.port, token);
    for (let i = 1; i <= 20; i++) await pub.request({ op: 'PUBLISH', topic: 'jobs.run', key: `k${i % 4}`, payload: { n: i } });
    await b.nEvents(1, 'g');
    const heldByB = b.events('g').map((f) => f.event.payload);
    b.ws.terminate();
    await eventually(() => Promise.resolve(new Set(acked.map((x) => x.n)).size === 20), 20_000, 'a to receive every event');
    // Each key's events arrive in publish order (redelivered ones before later ones of the same key).
    for (const key of ['k0', 'k1', 'k2', 'k3']) {
      const ns = acked.filter((x) => x.key === key).map((x) => x.n);
      expect(ns).toEqual([...ns].sort((x, y) => x - y));
    }
    expect(heldByB.length).toBeGreaterThan(0);
    expect(await metrics(h)).toMatch(/gateway_consumer_lag_events\{group="workers"/);
    await eventually(
      async () => {
        const cursors = await t.client.db(h.db).collection('group_cursors').find({ group: 'workers' }).toArray();
        const heads = await t.client.db(h.db).collection('events').countDocuments();
        return cursors.reduce((n, c) => n + (c['seq'] as number), 0) === heads;
      },
      10_000,
      'the cursors to cover every event',
    );
  });

  it('redelivers after NACK and after ack timeout, dead-letters after max deliveries, and replays a dead letter', async () => {
    const h = await hub({ ACK_TIMEOUT: '300ms', MAX_DELIVERIES: '3', REDELIVERY_BASE: '50ms' });
    const token = await rootToken();
    const c = await client(h.port, token);
    await c.request({ op: 'SUBSCRIBE', sub: 'g', topic: 'mail.*', group: 'mailers' });
    const pub = await client(h.port, token);
    const { eventId } = (await pub.request({ op: 'PUBLISH', topic: 'mail.send', key: 'm1', payload: 'hello' })) as unknown as {
      eventId: string;
    };

    const first = (await c.nEvents(1, 'g'))[0];
    expect(first?.delivery).toBe(1);
    expect(await c.request({ op: 'NACK', sub: 'g', eventId, delayMs: 100 })).toMatchObject({ op: 'OK' });
    const second = (await c.nEvents(2, 'g'))[1];
    expect(second).toMatchObject({ delivery: 2, event: { id: eventId } });
    // No ack: the timeout redelivers, and the third failure dead-letters it.
    const third = (await c.nEvents(3, 'g'))[2];
    expect(third?.delivery).toBe(3);
    const store = new MongoGroupStore(t.client.db(h.db));
    const dead = await eventually(
      async () => {
        const list = await store.listDeadLetters('mailers', 10);
        return list.length === 1 ? list : undefined;
      },
      10_000,
      'the dead letter',
    );
    expect(dead[0]).toMatchObject({ deliveries: 3, status: 'dead', event: { id: eventId } });
    expect(await c.request({ op: 'ACK', sub: 'g', eventId })).toMatchObject({ code: 'NO_SUCH_DELIVERY' });
    expect(await metrics(h)).toMatch(/gateway_dead_letters_total\{group="mailers",binary="gateway"\} 1/);
    expect(await metrics(h)).toMatch(/gateway_redeliveries_total\{group="mailers",binary="gateway"\} 2/);

    expect(await store.requestReplay('mailers', eventId)).toBe(true);
    const replayed = (await c.nEvents(4, 'g'))[3];
    expect(replayed?.event.id).toBe(eventId);
    expect(await c.request({ op: 'ACK', sub: 'g', eventId })).toMatchObject({ op: 'OK' });
    await eventually(async () => (await store.listDeadLetters('mailers', 10)).length === 0, 5_000, 'the replayed dead letter to clear');
  });

  it("refuses a member whose filter differs from the group's", async () => {
    const h = await hub();
    const c = await client(h.port, await rootToken());
    await c.request({ op: 'SUBSCRIBE', sub: 'g1', topic: 'x.*', group: 'gx' });
    expect(await c.request({ op: 'SUBSCRIBE', sub: 'g2', topic: 'y.*', group: 'gx' })).toMatchObject({ code: 'GROUP_MISMATCH' });
  });

  it('delivers to a group with tags only the events carrying them, and refuses a member naming other tags', async () => {
    const h = await hub();
    const c = await client(h.port, await rootToken());
    expect(await c.request({ op: 'SUBSCRIBE', sub: 'g', topic: 'tg.*', group: 'tagged', tags: ['vip', 'eu'] })).toMatchObject({ op: 'OK' });
    expect(await c.request({ op: 'SUBSCRIBE', sub: 'h', topic: 'tg.*', group: 'tagged', tags: ['eu'] })).toMatchObject({
      code: 'GROUP_MISMATCH',
    });
    for (const [i, tags] of [[], ['eu'], ['eu', 'vip'], ['vip']].entries())
      expect(await c.request({ op: 'PUBLISH', topic: 'tg.x', key: `k${i}`, payload: i, ...(tags.length ? { tags } : {}) })).toMatchObject({
        op: 'OK',
      });
    const [only] = await c.nEvents(1, 'g');
    expect(only?.event).toMatchObject({ payload: 2, tags: ['eu', 'vip'] });
    await sleep(500);
    expect(c.events('g')).toHaveLength(1);
  });
});

describe('shutdown', () => {
  it('closes clients with the shutdown code and releases group leases', async () => {
    const h = await startHub(t.url, `${t.name}_shutdown`);
    const c = await TestClient.authed(h.port, await rootToken());
    await c.request({ op: 'SUBSCRIBE', sub: 'g', topic: 'z.*', group: 'zed' });
    const leases = new MongoLeaseStore(t.client.db(`${t.name}_shutdown`));
    const held = async (): Promise<number> => (await leases.list('group:zed')).filter((l) => l.holder !== '').length;
    await eventually(async () => (await held()) === 4, 10_000, 'group leases');
    await h.stop();
    expect((await c.closed).code).toBe(CloseCode.SHUTTING_DOWN);
    expect(await held()).toBe(0);
  });
});
