/**
 * Regression tests for the defects of the black-box attack run (issue 11), each
 * over real sockets or real HTTP against in-process gateways and drainers on
 * the test server.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { SignJWT, exportJWK, generateKeyPair, type JWK } from 'jose';
import { createLogger } from '../internal/log/index.js';
import { OpsApp, loadOpsConfig } from '../internal/ops/index.js';
import { createOutbox } from '../internal/outbox/index.js';
import { CloseCode } from '../internal/protocol/index.js';
import { createRegistry } from '../internal/telemetry/index.js';
import { testCapabilities } from './harness/capabilities.js';
import { useTestDb } from './harness/db.js';
import { TEST_SECRET, rootToken, startHub, testToken, type TestHub } from './harness/hub.js';
import { eventually, startBinary, type BinaryProcess } from './harness/process.js';
import { freePort } from './harness/server.js';
import { TestClient } from './harness/ws-client.js';

const t = useTestDb('hardening');
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

afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.terminate();
  for (const h of hubs.splice(0)) await h.stop();
});

describe('group deliveries are bound to their member (1)', () => {
  it('settles a delivery only from the connection and member it was delivered to', async () => {
    const h = await hub({ ACK_TIMEOUT: '20s' });
    const token = await rootToken();
    const a = await client(h.port, token);
    const b = await client(h.port, token);
    for (const c of [a, b]) {
      expect(await c.request({ op: 'SUBSCRIBE', sub: 'g', topic: 'bound.*', group: 'bound', maxInFlight: 1 })).toMatchObject({
        op: 'OK',
      });
    }
    const pub = await client(h.port, token);
    const { eventId } = (await pub.request({ op: 'PUBLISH', topic: 'bound.x', key: 'k', payload: 1 })) as unknown as { eventId: string };
    const isEvent = (f: { op: string }) => f.op === 'EVENT';
    const owner = await Promise.race([a.waitFor(isEvent).then(() => a), b.waitFor(isEvent).then(() => b)]);
    const other = owner === a ? b : a;
    // Another connection of the group can neither ack nor nack it (not even to delay it for an hour)...
    expect(await other.request({ op: 'ACK', sub: 'g', eventId })).toMatchObject({ op: 'ERR', code: 'NO_SUCH_DELIVERY' });
    expect(await other.request({ op: 'NACK', sub: 'g', eventId, delayMs: 3_600_000 })).toMatchObject({
      op: 'ERR',
      code: 'NO_SUCH_DELIVERY',
    });
    // ...nor can another subscription of the same connection in the same group.
    expect(await owner.request({ op: 'SUBSCRIBE', sub: 'g2', topic: 'bound.*', group: 'bound' })).toMatchObject({ op: 'OK' });
    expect(await owner.request({ op: 'ACK', sub: 'g2', eventId })).toMatchObject({ op: 'ERR', code: 'NO_SUCH_DELIVERY' });
    // The delivery is still the owner's to settle.
    expect(await owner.request({ op: 'ACK', sub: 'g', eventId })).toMatchObject({ op: 'OK' });
    await sleep(300);
    expect([...a.events(), ...b.events()].filter((f) => f.event.id === eventId)).toHaveLength(1);
  });
});

describe('consumer groups are scoped by the token (2)', () => {
  const rules = (groups: string[]) => ({
    policy: {
      rules: [
        { effect: 'allow', action: 'publish', topics: ['pay.*'] },
        { effect: 'allow', action: 'subscribe', topics: ['pay.*'], groups },
        { effect: 'deny', action: 'subscribe', topics: ['pay.*'], groups: ['payroll'] },
      ],
    },
  });

  it('lets a token join only the groups it grants, with deny winning, and revokes a group on re-AUTH', async () => {
    const h = await hub();
    const billing = await client(h.port, await testToken(rules(['billing']), { sub: 'svc-billing' }));
    expect(await billing.request({ op: 'SUBSCRIBE', sub: 'b', topic: 'pay.*', group: 'billing' })).toMatchObject({ op: 'OK' });
    // Live subscriptions are decided by topic alone.
    expect(await billing.request({ op: 'SUBSCRIBE', sub: 'live', topic: 'pay.*' })).toMatchObject({ op: 'OK' });
    const mallory = await client(h.port, await testToken(rules(['reporting']), { sub: 'mallory' }));
    expect(await mallory.request({ op: 'SUBSCRIBE', sub: 'b', topic: 'pay.*', group: 'billing' })).toMatchObject({
      op: 'ERR',
      code: 'FORBIDDEN',
    });
    expect(await mallory.request({ op: 'SUBSCRIBE', sub: 'r', topic: 'pay.*', group: 'reporting' })).toMatchObject({ op: 'OK' });
    const any = await client(h.port, await testToken(rules(['*']), { sub: 'ops' }));
    expect(await any.request({ op: 'SUBSCRIBE', sub: 'x', topic: 'pay.*', group: 'anything' })).toMatchObject({ op: 'OK' });
    expect(await any.request({ op: 'SUBSCRIBE', sub: 'p', topic: 'pay.*', group: 'payroll' })).toMatchObject({
      op: 'ERR',
      code: 'FORBIDDEN',
    });

    // The event goes to billing's member; mallory is not in the group and cannot settle it.
    const { eventId } = (await billing.request({ op: 'PUBLISH', topic: 'pay.done', key: 'k', payload: 1 })) as unknown as {
      eventId: string;
    };
    await billing.waitFor((f) => f.op === 'EVENT' && f.sub === 'b');
    expect(await mallory.request({ op: 'ACK', sub: 'b', eventId })).toMatchObject({ op: 'ERR', code: 'NO_SUCH_SUBSCRIPTION' });

    // A refreshed token without the group takes the membership away.
    expect(await billing.request({ op: 'AUTH', token: await testToken(rules(['other']), { sub: 'svc-billing' }) })).toMatchObject({
      op: 'OK',
    });
    expect(await billing.waitFor((f) => f.op === 'ERR' && f.code === 'SUBSCRIPTION_REVOKED')).toMatchObject({ sub: 'b' });
    expect(await billing.request({ op: 'ACK', sub: 'b', eventId })).toMatchObject({ op: 'ERR', code: 'NO_SUCH_SUBSCRIPTION' });
  });

  it('still lets tokens that name no groups join any group their topics allow', async () => {
    const h = await hub();
    const c = await client(h.port, await testToken({ scopes: 'subscribe:pay.*' }));
    expect(await c.request({ op: 'SUBSCRIBE', sub: 's', topic: 'pay.*', group: 'whatever' })).toMatchObject({ op: 'OK' });
  });
});

describe('the subject must be a non-empty string (3)', () => {
  /** A token whose `sub` claim is exactly `sub` (jose's setSubject would refuse the bad ones). */
  const withSub = (sub: unknown) =>
    new SignJWT({ sub, scopes: 'publish:** subscribe:**' } as Record<string, unknown>)
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime(Math.floor(Date.now() / 1000) + 300)
      .sign(new TextEncoder().encode(TEST_SECRET));

  it('refuses an empty, numeric or oversized sub with CLAIMS_INVALID and closes the connection', async () => {
    const h = await hub();
    for (const sub of ['', 42, 'x'.repeat(256), ['alice'], { id: 'alice' }, null]) {
      const c = await client(h.port);
      expect({ sub, reply: await c.request({ op: 'AUTH', token: await withSub(sub) }) }).toMatchObject({
        sub,
        reply: { op: 'ERR', code: 'AUTH_FAILED', reason: 'CLAIMS_INVALID' },
      });
      expect((await c.closed).code).toBe(CloseCode.AUTH_FAILED);
    }
    // A numeric subject cannot pass for the string one: the string one still works on its own.
    const ok = await client(h.port);
    expect(await ok.request({ op: 'AUTH', token: await withSub('42') })).toMatchObject({ op: 'OK', subject: '42' });
  });
});

describe('a key rotated out of the JWKS stops verifying (4)', () => {
  let jwks: Server;
  let keys: JWK[] = [];
  beforeAll(async () => {
    jwks = createServer((_req, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys })));
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', () => r()));
  });
  afterAll(() => new Promise<void>((r) => jwks.close(() => r())));

  it('refuses AUTH with a removed key within JWKS_CACHE_MAX_AGE', async () => {
    const retired = await generateKeyPair('ES256', { extractable: true });
    const current = await generateKeyPair('ES256', { extractable: true });
    const jwk = async (k: CryptoKey, kid: string): Promise<JWK> => ({ ...(await exportJWK(k)), kid, alg: 'ES256', use: 'sig' });
    keys = [await jwk(retired.publicKey, 'retired'), await jwk(current.publicKey, 'current')];
    const h = await hub({
      JWT_SECRET: '',
      JWT_ALGORITHMS: 'ES256',
      JWKS_URL: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`,
      JWKS_CACHE_MAX_AGE: '500ms',
    });
    const sign = (key: CryptoKey, kid: string) =>
      new SignJWT({ scopes: 'subscribe:**' })
        .setProtectedHeader({ alg: 'ES256', kid })
        .setSubject('rotated')
        .setExpirationTime(Math.floor(Date.now() / 1000) + 300)
        .sign(key);
    const oldToken = await sign(retired.privateKey, 'retired');
    expect(await (await client(h.port)).request({ op: 'AUTH', token: oldToken })).toMatchObject({ op: 'OK' });
    // The issuer rotates the key out.
    keys = [await jwk(current.publicKey, 'current')];
    await sleep(800);
    const late = await client(h.port);
    expect(await late.request({ op: 'AUTH', token: oldToken })).toMatchObject({ op: 'ERR', code: 'AUTH_FAILED', reason: 'UNKNOWN_KEY' });
    expect((await late.closed).code).toBe(CloseCode.AUTH_FAILED);
    expect(await (await client(h.port)).request({ op: 'AUTH', token: await sign(current.privateKey, 'current') })).toMatchObject({
      op: 'OK',
    });
  });
});

describe('unstorable payloads are refused, not answered "retry" (5)', () => {
  it('answers INVALID_PAYLOAD for keys, depth, values and headers the database cannot store or JSON cannot carry', async () => {
    const h = await hub();
    const c = await client(h.port, await rootToken());
    let deep = '1';
    for (let i = 0; i < 150; i++) deep = `{"d":${deep}}`;
    // Raw frames: some of these cannot be written as JavaScript objects and sent through JSON.stringify.
    const frames = [
      '{"op":"PUBLISH","id":"dollar","topic":"t.x","payload":{"$set":{"admin":true}}}',
      '{"op":"PUBLISH","id":"nested-dollar","topic":"t.x","payload":{"a":[{"$where":"1"}]}}',
      '{"op":"PUBLISH","id":"dotted","topic":"t.x","payload":{"a.b":1}}',
      '{"op":"PUBLISH","id":"nul","topic":"t.x","payload":{"a\\u0000b":1}}',
      `{"op":"PUBLISH","id":"deep","topic":"t.x","payload":${deep}}`,
      '{"op":"PUBLISH","id":"infinity","topic":"t.x","payload":{"n":1e400}}',
      '{"op":"PUBLISH","id":"header-dollar","topic":"t.x","payload":1,"headers":{"$x":"y"}}',
      '{"op":"PUBLISH","id":"header-number","topic":"t.x","payload":1,"headers":{"n":1}}',
    ];
    for (const text of frames) {
      const id = (JSON.parse(text) as { id: string }).id;
      const reply = c.waitFor((f) => f.op !== 'EVENT' && f.id === id);
      c.ws.send(text);
      expect({ id, reply: await reply }).toMatchObject({ id, reply: { op: 'ERR', code: 'INVALID_PAYLOAD' } });
    }
    expect(await c.request({ op: 'PUBLISH', topic: 't.x', payload: { fine: [1, { two: 2 }] } })).toMatchObject({ op: 'OK' });
  });

  it('answers a payload the server itself refuses with INVALID_PAYLOAD, never UNAVAILABLE', async () => {
    const h = await hub();
    const c = await client(h.port, await rootToken());
    // An array directly inside an array: valid JSON and BSON, stored by MongoDB, refused by FerretDB 1.x.
    const reply = await c.request({ op: 'PUBLISH', topic: 't.x', payload: { matrix: [[1, 2], [3]] } });
    if (testCapabilities().flavor === 'ferretdb') expect(reply).toMatchObject({ op: 'ERR', code: 'INVALID_PAYLOAD' });
    else expect(reply).toMatchObject({ op: 'OK' });
  });
});

describe('group SUBSCRIBE honours from, and its OK comes first (7)', () => {
  /** Publishes `n` events to `topic` and waits until a live subscriber has seen them (so they are in the log). */
  async function history(port: number, topic: string, n: number): Promise<void> {
    const c = await client(port, await rootToken());
    await c.request({ op: 'SUBSCRIBE', sub: 'watch', topic });
    for (let i = 0; i < n; i++) await c.request({ op: 'PUBLISH', topic, key: `h${i}`, payload: { old: i } });
    await c.nEvents(n, 'watch');
  }

  it('replays the example session of the protocol document verbatim, with history present', async () => {
    const h = await hub({ OUTBOX_PARTITIONS: '16', PUBLISH_RATE: '1000', PUBLISH_BURST: '1000' });
    await history(h.port, 'orders.created', 12);
    const doc = readFileSync(new URL('../internal/protocol/PROTOCOL.md', import.meta.url), 'utf8');
    const block = /## Example session[\s\S]*?```\n([\s\S]*?)```/.exec(doc)?.[1] ?? '';
    const lines = block.split('\n').filter((l) => l.startsWith('> ') || l.startsWith('< '));
    expect(lines.length).toBeGreaterThanOrEqual(8);
    const token = await testToken(
      {
        policy: {
          rules: [
            { effect: 'allow', action: 'publish', topics: ['orders.*'] },
            { effect: 'allow', action: 'subscribe', topics: ['orders.*'], groups: ['billing'] },
          ],
        },
      },
      { sub: 'svc-billing' },
    );
    const c = await client(h.port);
    let events = 0;
    for (const line of lines) {
      // The document elides the token and the tail of an event with "...".
      const text = line.slice(2).replace('"eyJ..."', JSON.stringify(token)).replace(',...}', '}');
      const frame = JSON.parse(text) as Record<string, unknown>;
      if (line.startsWith('> ')) {
        c.ws.send(JSON.stringify(frame));
        continue;
      }
      const got =
        frame['op'] === 'EVENT'
          ? await c.waitFor((f) => f.op === 'EVENT', 10_000, events++)
          : await c.waitFor((f) => f.op !== 'EVENT' && f.id === frame['id']);
      // Values that depend on the moment or the history: checked for type, not value.
      const volatile: Record<string, unknown> = {
        expiresAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as unknown,
        seq: expect.any(Number) as unknown,
      };
      const expected = {
        ...frame,
        ...('expiresAt' in frame ? { expiresAt: volatile['expiresAt'] } : {}),
        ...(frame['op'] === 'EVENT' ? { event: { ...(frame['event'] as object), seq: volatile['seq'] } } : {}),
      };
      expect({ line, got }).toMatchObject({ line, got: expected });
    }
    // The SUBSCRIBE's OK came before the subscription's first EVENT, and nothing from the history was delivered.
    const ok = c.frames.findIndex((f) => f.op === 'OK' && f.id === '2');
    const first = c.frames.findIndex((f) => f.op === 'EVENT');
    expect(ok).toBeGreaterThanOrEqual(0);
    expect(first).toBeGreaterThan(ok);
    await sleep(300);
    expect(c.events().map((f) => f.event.id)).toEqual(['o-1:created']);
  });

  it('starts a new group at from: earliest replays history, a sequence starts after it, an existing group resumes', async () => {
    const h = await hub({ OUTBOX_PARTITIONS: '1' });
    await history(h.port, 'h.x', 5);
    const c = await client(h.port, await rootToken());
    expect(await c.request({ op: 'SUBSCRIBE', sub: 'all', topic: 'h.*', group: 'g-all', from: 'earliest' })).toMatchObject({ op: 'OK' });
    expect(await c.request({ op: 'SUBSCRIBE', sub: 'after3', topic: 'h.*', group: 'g-after3', from: { '0': 3 } })).toMatchObject({
      op: 'OK',
    });
    expect(await c.request({ op: 'SUBSCRIBE', sub: 'now', topic: 'h.*', group: 'g-now' })).toMatchObject({ op: 'OK' });
    await c.request({ op: 'PUBLISH', topic: 'h.x', key: 'new', payload: { old: 'no' } });
    const payloads = async (sub: string, n: number) => (await c.nEvents(n, sub)).map((f) => (f.event.payload as { old: unknown }).old);
    expect(await payloads('all', 6)).toEqual([0, 1, 2, 3, 4, 'no']);
    expect(await payloads('after3', 3)).toEqual([3, 4, 'no']);
    expect(await payloads('now', 1)).toEqual(['no']);
    await sleep(300);
    expect(c.events('now')).toHaveLength(1);
    // The group exists now: a member coming back resumes from its cursor, whatever its from.
    expect(await c.request({ op: 'ACK', sub: 'now', eventId: c.events('now')[0]!.event.id })).toMatchObject({ op: 'OK' });
    expect(await c.request({ op: 'UNSUBSCRIBE', sub: 'now' })).toMatchObject({ op: 'OK' });
    expect(await c.request({ op: 'SUBSCRIBE', sub: 'back', topic: 'h.*', group: 'g-now', from: 'earliest' })).toMatchObject({ op: 'OK' });
    await c.request({ op: 'PUBLISH', topic: 'h.x', key: 'newer', payload: { old: 'newer' } });
    expect(await payloads('back', 1)).toEqual(['newer']);
    await sleep(300);
    expect(c.events('back')).toHaveLength(1);
  });

  it("sends a joining member's OK before the deliveries that were waiting for it", async () => {
    const h = await hub({ ACK_TIMEOUT: '20s' });
    const first = await client(h.port, await rootToken());
    expect(await first.request({ op: 'SUBSCRIBE', sub: 'g', topic: 'wait.*', group: 'waiting', maxInFlight: 1 })).toMatchObject({
      op: 'OK',
    });
    const pub = await client(h.port, await rootToken());
    for (let i = 0; i < 6; i++) await pub.request({ op: 'PUBLISH', topic: 'wait.x', key: `k${i}`, payload: i });
    await first.nEvents(1, 'g');
    await sleep(300); // the rest are read and wait for capacity
    const second = await client(h.port, await rootToken());
    const reply = await second.request({ op: 'SUBSCRIBE', sub: 'g', topic: 'wait.*', group: 'waiting' });
    expect(reply).toMatchObject({ op: 'OK' });
    await second.nEvents(5, 'g');
    const subscribed = second.frames.findIndex((f) => f.op === 'OK' && (f as { sub?: unknown }).sub === 'g');
    expect(subscribed).toBeGreaterThan(0);
    expect(subscribed).toBeLessThan(second.frames.findIndex((f) => f.op === 'EVENT'));
  });
});

describe('ops refuses odd input and sends security headers (8)', () => {
  const ADMIN = 'admin-token-0123456789';
  let ops: OpsApp | undefined;
  let url = '';
  beforeAll(async () => {
    ops = new OpsApp(
      loadOpsConfig({
        MONGO_URL: t.url,
        MONGO_DB: `${t.name}_ops`,
        OPS_HOST: '127.0.0.1',
        OPS_PORT: '0',
        OUTBOX_PARTITIONS: '4',
        OPS_ADMIN_TOKEN: ADMIN,
      }),
      { log: createLogger({ level: 'error' }), registry: createRegistry('ops') },
    );
    await ops.start();
    url = `http://127.0.0.1:${ops.port}`;
  });
  afterAll(async () => ops?.stop());

  const routes: Array<[method: 'GET' | 'POST', path: string]> = [
    ['GET', '/'],
    ['GET', '/assets/dashboard.js'],
    ['GET', '/healthz'],
    ['GET', '/metrics'],
    ['GET', '/api/overview'],
    ['GET', '/api/backlog'],
    ['GET', '/api/leases'],
    ['GET', '/api/partitions'],
    ['GET', '/api/groups'],
    ['GET', '/api/events/latest?topic=a.b&key=k'],
    ['GET', '/api/events?partition=0'],
    ['GET', '/api/events/export?partition=0'],
    ['GET', '/api/dead-letters?limit=5'],
    ['GET', '/api/outbox/some-id'],
    ['POST', '/api/outbox/some-id/requeue'],
    ['POST', '/api/groups/g/dead-letters/e/replay'],
    ['GET', '/api/positions?at=2026-01-01T00:00:00Z'],
    ['POST', '/api/groups/g/reset'],
    ['GET', '/api/groups/g/dead-letters'],
  ];
  const call = (method: string, path: string) => fetch(url + path, { method, headers: { authorization: `Bearer ${ADMIN}` } });

  it('refuses bracketed and repeated parameters on every route with 400 INVALID_PARAMETER', async () => {
    for (const [method, path] of routes) {
      const sep = path.includes('?') ? '&' : '?';
      for (const [extra, parameter] of [
        ['limit[$gt]=1', 'limit'],
        ['limit%5B%24ne%5D=1', 'limit'],
        ['a[]=1', 'a'],
        ['x=1&x=2', 'x'],
      ] as const) {
        const res = await call(method, `${path}${sep}${extra}`);
        expect({ method, path, extra, status: res.status, body: (await res.json()) as unknown }).toEqual({
          method,
          path,
          extra,
          status: 400,
          body: expect.objectContaining({ error: 'INVALID_PARAMETER', parameter }) as unknown,
        });
      }
    }
  });

  it('answers malformed percent-encoding in a path with 400, not 503', async () => {
    for (const path of ['/api/outbox/%E0%A4%A', '/api/outbox/%', '/api/outbox/%zz/requeue', '/api/groups/%/dead-letters/x/replay']) {
      const res = await call(path.endsWith('replay') || path.endsWith('requeue') ? 'POST' : 'GET', path);
      expect({ path, status: res.status, body: (await res.json()) as unknown }).toEqual({
        path,
        status: 400,
        body: expect.objectContaining({ error: 'INVALID_PARAMETER' }) as unknown,
      });
    }
  });

  it('sends CSP (no inline script, no framing), nosniff and frame denial on the page, the API and errors', async () => {
    for (const path of ['/', '/assets/dashboard.js', '/api/overview', '/api/nope', '/api/outbox/%']) {
      const res = await call('GET', path);
      const csp = res.headers.get('content-security-policy') ?? '';
      expect({ path, csp }).toEqual({ path, csp: expect.stringContaining("frame-ancestors 'none'") as unknown });
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain('unsafe-inline');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('x-frame-options')).toBe('DENY');
    }
    // The page itself carries no inline script or style for the policy to block.
    const page = await (await call('GET', '/')).text();
    expect(page).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(page).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
  });
});

describe('slow consumers are cut off by what the gateway holds for them (9)', () => {
  it('closes a consumer that stops reading while ~1 KiB events flow, once the queue the server holds passes the mark', async () => {
    const highWater = 256 * 1024;
    const h = await hub({ SEND_HIGH_WATER_BYTES: String(highWater), MAX_REPLAY: '100000' });
    const metrics = async () => (await fetch(`http://127.0.0.1:${h.gateway.telemetryPort}/metrics`)).text();
    // History of 2,000 events of about 1 KiB each, written as an application would.
    const watcher = await client(h.port, await rootToken());
    await watcher.request({ op: 'SUBSCRIBE', sub: 'w', topic: 'slow.*' });
    const outbox = createOutbox(t.client.db(h.db), { partitions: 4 });
    const text = 'x'.repeat(900);
    for (let b = 0; b < 4; b++)
      await outbox.addMany(
        Array.from({ length: 500 }, (_, i) => ({ topic: 'slow.x', key: `k${i % 50}`, payload: { n: b * 500 + i, text } })),
      );
    await watcher.nEvents(2_000, 'w', 60_000);
    const frameBytes = Buffer.byteLength(JSON.stringify(watcher.events('w')[0]));
    expect(frameBytes).toBeGreaterThan(1_000);
    expect(frameBytes).toBeLessThan(1_500);

    // The consumer stops reading, then asks for the history 16 times over (~40 MB, far more than the
    // kernel's socket buffers take): it cannot even read the OKs, so its requests are sent blind.
    const slow = await client(h.port, await rootToken());
    const socket = (slow.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    socket.pause();
    for (let i = 0; i < 16; i++)
      slow.ws.send(JSON.stringify({ op: 'SUBSCRIBE', id: `s${i}`, sub: `s${i}`, topic: 'slow.*', from: 'earliest' }));
    await eventually(async () => /gateway_closes_total\{code="4008",binary="gateway"\} 1/.test(await metrics()), 60_000, 'the close');
    // What the gateway held queued for the socket when it gave up: past the mark by at most a frame or so.
    const m = await metrics();
    const count = Number(/gateway_slow_consumer_buffered_bytes_count\{binary="gateway"\} (\d+)/.exec(m)?.[1]);
    const held = Number(/gateway_slow_consumer_buffered_bytes_sum\{binary="gateway"\} (\d+)/.exec(m)?.[1]);
    expect(count).toBe(1);
    expect(held).toBeGreaterThan(highWater);
    expect(held).toBeLessThan(highWater + 8 * frameBytes);
    // Reading again, the consumer gets what was already on its way and then the close frame: 4008.
    socket.resume();
    expect((await slow.closed).code).toBe(CloseCode.SLOW_CONSUMER);
    const delivered = slow.events().length;
    expect(delivered).toBeGreaterThan(0);
    expect(delivered).toBeLessThan(16 * 2_000);
    // The watcher, which reads, was not affected.
    expect(watcher.ws.readyState).toBe(watcher.ws.OPEN);
  }, 120_000);
});

describe('redeliveries stay recognisable across gateway failover (10)', () => {
  const running: BinaryProcess[] = [];
  afterEach(async () => {
    for (const p of running) p.kill('SIGKILL');
    await Promise.all(running.map((p) => p.exited));
    running.length = 0;
  });
  function start(name: 'drainer' | 'gateway', db: string, env: Record<string, string> = {}): BinaryProcess {
    const p = startBinary(name, {
      MONGO_URL: t.url,
      MONGO_DB: db,
      OUTBOX_PARTITIONS: '4',
      METRICS_HOST: '127.0.0.1',
      METRICS_PORT: '0',
      GATEWAY_HOST: '127.0.0.1',
      JWT_SECRET: TEST_SECRET,
      POLL_MAX: '30ms',
      TAIL_POLL_MAX: '30ms',
      GROUP_LEASE_TTL: '1500ms',
      GROUP_LEASE_RENEW_INTERVAL: '200ms',
      ACK_TIMEOUT: '60s',
      ...env,
    });
    running.push(p);
    return p;
  }
  async function gateway(db: string, name: string): Promise<{ proc: BinaryProcess; port: number }> {
    const port = await freePort();
    const proc = start('gateway', db, { GATEWAY_PORT: String(port), MEMBER_ID: name });
    await proc.waitForLog((l) => l.msg === 'gateway listening');
    return { proc, port };
  }

  it('continues the delivery counter on another gateway after the first is killed', async () => {
    const db = `${t.name}_failover`;
    start('drainer', db);
    const g1 = await gateway(db, 'gw1');
    const c1 = await client(g1.port, await rootToken());
    expect(await c1.request({ op: 'SUBSCRIBE', sub: 'g', topic: 'fo.*', group: 'failover' })).toMatchObject({ op: 'OK' });
    const id = async (key: string) =>
      ((await c1.request({ op: 'PUBLISH', topic: 'fo.x', key, payload: key })) as unknown as { eventId: string }).eventId;
    const once = await id('once');
    const twice = await id('twice');
    await c1.nEvents(2, 'g');
    expect(await c1.request({ op: 'NACK', sub: 'g', eventId: twice, delayMs: 0 })).toMatchObject({ op: 'OK' });
    await c1.nEvents(3, 'g');
    expect(c1.events('g').map((f) => [f.event.id, f.delivery])).toEqual(
      expect.arrayContaining([
        [once, 1],
        [twice, 1],
        [twice, 2],
      ]),
    );
    await sleep(500); // let the redelivery's count reach the database
    g1.proc.kill('SIGKILL');
    await g1.proc.exited;

    const g2 = await gateway(db, 'gw2');
    const c2 = await client(g2.port, await rootToken());
    expect(await c2.request({ op: 'SUBSCRIBE', sub: 'g', topic: 'fo.*', group: 'failover' })).toMatchObject({ op: 'OK' });
    // Once gw1's leases expire, gw2 redelivers both: recognisably, with the count continued.
    const got = await c2.nEvents(2, 'g', 20_000);
    expect(new Map(got.map((f) => [f.event.id, f.delivery]))).toEqual(
      new Map([
        [once, 2],
        [twice, 3],
      ]),
    );
  }, 60_000);
});
