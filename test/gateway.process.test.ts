/**
 * Gateway binaries as processes: a consumer group shared by two gateway
 * replicas (one SIGKILLed), SIGTERM shutdown, and configuration errors.
 */
import { CloseCode, type ServerFrame } from '../internal/gateway/index.js';
import { useTestDb } from './harness/db.js';
import { TEST_SECRET, rootToken } from './harness/hub.js';
import { eventually, startBinary, type BinaryProcess } from './harness/process.js';
import { freePort } from './harness/server.js';
import { TestClient } from './harness/ws-client.js';

const t = useTestDb('gwproc');
const running = new Set<BinaryProcess>();
const clients: TestClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.terminate();
  for (const p of running) p.kill('SIGKILL');
  await Promise.all([...running].map((p) => p.exited));
  running.clear();
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
    LEASE_RENEW_INTERVAL: '300ms',
    ...env,
  });
  running.add(p);
  return p;
}

async function gateway(db: string, name: string): Promise<{ proc: BinaryProcess; port: number }> {
  const port = await freePort();
  const proc = start('gateway', db, { GATEWAY_PORT: String(port), MEMBER_ID: name });
  await proc.waitForLog((l) => l.msg === 'gateway listening');
  return { proc, port };
}

/** A group member that acks everything and records what it saw (and, in `firsts`, what came as a first delivery). */
async function member(port: number, seen: string[], firsts: string[] = []): Promise<TestClient> {
  const c = await TestClient.authed(port, await rootToken());
  clients.push(c);
  c.ws.on('message', (data) => {
    const f = JSON.parse((data as Buffer).toString()) as ServerFrame;
    if (f.op !== 'EVENT') return;
    seen.push(f.event.id);
    if (f.delivery === 1) firsts.push(f.event.id);
    c.ws.send(JSON.stringify({ op: 'ACK', id: `a${seen.length}`, sub: 'g', eventId: f.event.id }));
  });
  const ok = await c.request({ op: 'SUBSCRIBE', sub: 'g', topic: 'work.*', group: 'crew' });
  expect(ok.op).toBe('OK');
  return c;
}

it("shares a group across two gateway replicas and moves a killed replica's partitions to the other", async () => {
  const db = `${t.name}_group`;
  start('drainer', db);
  const g1 = await gateway(db, 'gw1');
  const g2 = await gateway(db, 'gw2');
  const seen1: string[] = [];
  const seen2: string[] = [];
  const firsts: string[] = [];
  await member(g1.port, seen1, firsts);
  await member(g2.port, seen2, firsts);
  // Both replicas hold some of the group's 4 partitions.
  await eventually(
    async () => {
      const leases = await t.client
        .db(db)
        .collection('leases')
        .find({ group: 'group:crew', expiresAt: { $gt: new Date() } })
        .toArray();
      return new Set(leases.map((l) => l['holder'] as unknown)).size === 2;
    },
    10_000,
    'both gateways to hold group partitions',
  );

  const pub = await TestClient.authed(g1.port, await rootToken());
  clients.push(pub);
  const ids: string[] = [];
  for (let i = 0; i < 40; i++)
    ids.push(
      ((await pub.request({ op: 'PUBLISH', topic: 'work.item', key: `k${i}`, payload: i })) as unknown as { eventId: string }).eventId,
    );
  await eventually(() => Promise.resolve(new Set([...seen1, ...seen2]).size >= 40), 30_000, 'every event to be delivered').catch(
    (err: unknown) => {
      const brief = (p: BinaryProcess) => p.logs.filter((l) => l.level !== 'info' || /lease|group/.test(String(l.msg))).slice(-15);
      throw new Error(
        `${String(err)}; seen ${seen1.length}+${seen2.length}; gw1 ${JSON.stringify(brief(g1.proc))}; gw2 ${JSON.stringify(brief(g2.proc))}`,
      );
    },
  );
  // One member of the group per event. A partition can still move between the replicas while
  // they settle their shares, and an ack in flight then is lost with it: the event is delivered
  // again, but recognisably (delivery > 1). No event is ever delivered twice as a first delivery.
  expect(new Set(firsts).size).toBe(firsts.length);
  expect(new Set([...seen1, ...seen2])).toEqual(new Set(ids));
  expect(seen1.length).toBeGreaterThan(0);
  expect(seen2.length).toBeGreaterThan(0);

  g2.proc.kill('SIGKILL');
  const more: string[] = [];
  for (let i = 0; i < 20; i++)
    more.push(
      ((await pub.request({ op: 'PUBLISH', topic: 'work.item', key: `m${i}`, payload: i })) as unknown as { eventId: string }).eventId,
    );
  await eventually(
    () => Promise.resolve(more.every((id) => seen1.includes(id))),
    20_000,
    'the surviving replica to take over and deliver everything',
  );
});

it('closes clients with 1001 and exits 0 on SIGTERM', async () => {
  const db = `${t.name}_term`;
  const g = await gateway(db, 'gw-term');
  const c = await TestClient.authed(g.port, await rootToken());
  clients.push(c);
  g.proc.kill('SIGTERM');
  expect((await c.closed).code).toBe(CloseCode.SHUTTING_DOWN);
  expect(await g.proc.exited).toBe(0);
});

it('refuses bad configuration naming the variables', async () => {
  const p = startBinary('gateway', {
    MONGO_URL: 'mongodb://127.0.0.1:1',
    JWT_SECRET: '',
    JWT_ALGORITHMS: 'HS256,none',
    GATEWAY_PORT: 'eighty',
  });
  running.add(p);
  expect(await p.exited).toBe(2);
  const line = p.logs.find((l) => l.code === 'CONFIG_INVALID');
  for (const v of ['JWT_SECRET', 'JWT_ALGORITHMS', 'GATEWAY_PORT']) expect(line?.msg).toContain(v);
});
