/**
 * A burst of hostile frames against a gateway process (issue 23, item 0), as the attack run
 * sent it: authenticated and anonymous sockets sending random ops, malformed fields,
 * prototype names for subscriptions and groups, pipelined SUBSCRIBE/UNSUBSCRIBE pairs with
 * one name, ACK/NACK of deliveries that do not exist, while events flow into the groups.
 * Then every hostile socket is gone, and the gateway must be back at its baseline within
 * seconds: memory and CPU settle, /readyz answers 200, a well-behaved client publishes and
 * receives, and the log stops repeating.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { MongoClient } from 'mongodb';
import { migrateOutbox } from '../internal/outbox/index.js';
import { freshDbName, testUrl } from './harness/db.js';
import { TEST_SECRET, rootToken } from './harness/hub.js';
import { eventually, startBinary, type BinaryProcess } from './harness/process.js';
import { freePort } from './harness/server.js';
import { TestClient } from './harness/ws-client.js';

const procs: BinaryProcess[] = [];
const sockets: TestClient[] = [];
const db = freshDbName('hostile');

afterAll(async () => {
  for (const s of sockets.splice(0)) s.ws.terminate();
  for (const p of procs) p.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
  const client = await new MongoClient(testUrl()).connect();
  await client.db(db).dropDatabase();
  await client.close();
});

/** Resident memory of `pid`, in MiB. */
function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

/** CPU time of `pid` (user + system), in clock ticks of 10 ms. */
function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return Number(fields[11]) + Number(fields[12]);
}

/** Share of one core `pid` used over `ms`. */
async function cpuShare(pid: number, ms: number): Promise<number> {
  const before = cpuTicks(pid);
  await sleep(ms);
  return ((cpuTicks(pid) - before) * 10) / ms;
}

async function ready(port: number): Promise<boolean> {
  return fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2_000) }).then(
    (r) => r.status === 200,
    () => false,
  );
}

const NAMES = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'g', 'a-b.c'];
const pick = <T>(list: readonly T[]): T => list[Math.floor(Math.random() * list.length)] as T;

/** One hostile frame: mostly well-formed requests with hostile names, some malformed. */
function hostileFrame(n: number): string {
  const name = pick(NAMES);
  const id = `h${n}`;
  switch (n % 9) {
    case 0:
      return JSON.stringify({ op: 'SUBSCRIBE', id, sub: name, topic: 'hostile.*', group: name, from: 'earliest' });
    case 1:
      return JSON.stringify({ op: 'UNSUBSCRIBE', id, sub: name });
    case 2:
      return JSON.stringify({ op: pick(['ACK', 'NACK']), id, sub: name, eventId: `nope-${n}`, delayMs: 0 });
    case 3:
      return JSON.stringify({ op: 'SUBSCRIBE', id, sub: name, topic: pick(['**', 'hostile.**', '*.*']), from: { '0': 0, __proto__: 1 } });
    case 4:
      return JSON.stringify({ op: 'PUBLISH', id, topic: `hostile.${name.replace(/[^A-Za-z0-9_-]/g, 'x')}`, key: name, payload: { n } });
    case 5:
      return JSON.stringify({ op: pick(['FOO', '__proto__', 'constructor', 42]), id });
    case 6:
      return `{"op":"SUBSCRIBE","id":"${id}","sub":"${name}","topic":"hostile.*","group":"${name}","maxInFlight":${pick([0, -1, 1e9, 'x', 1])}}`;
    case 7:
      return pick(['not json', '[]', '{"op":"PING"}', '{"__proto__":{"op":"AUTH"}}', '{"op":"AUTH","id":"x","token":5}']);
    default:
      return JSON.stringify({ op: 'PING', id });
  }
}

it('comes back to its baseline within seconds after a burst of hostile frames', async () => {
  const client = await new MongoClient(testUrl()).connect();
  await migrateOutbox(client.db(db), { partitions: 4 });
  await client.close();
  const [gatewayPort, metricsPort, drainerPort] = [await freePort(), await freePort(), await freePort()];
  const common = { MONGO_URL: testUrl(), MONGO_DB: db, OUTBOX_PARTITIONS: '4', METRICS_HOST: '127.0.0.1' };
  procs.push(startBinary('drainer', { ...common, METRICS_PORT: String(drainerPort), POLL_MAX: '100ms' }));
  const gateway = startBinary('gateway', {
    ...common,
    METRICS_PORT: String(metricsPort),
    GATEWAY_HOST: '127.0.0.1',
    GATEWAY_PORT: String(gatewayPort),
    JWT_SECRET: TEST_SECRET,
    GROUP_LEASE_TTL: '3s',
    GROUP_LEASE_RENEW_INTERVAL: '1s',
    ACK_TIMEOUT: '1s',
    REDELIVERY_BASE: '10ms',
    MAX_DELIVERIES: '1000',
    TAIL_POLL_MAX: '100ms',
  });
  procs.push(gateway);
  const pid = gateway.child.pid as number;
  await eventually(() => ready(metricsPort), 30_000, 'the gateway to be ready');
  const token = await rootToken(600);

  // Baseline after a short warm-up of well-behaved traffic.
  const warm = await TestClient.authed(gatewayPort, token);
  sockets.push(warm);
  for (let i = 0; i < 20; i++) expect(await warm.request({ op: 'PUBLISH', topic: 'warm.up', payload: i })).toMatchObject({ op: 'OK' });
  await sleep(2_000);
  const baseline = { rss: rssMiB(pid), cpu: await cpuShare(pid, 2_000) };

  // The burst: 16 sockets (half authenticated), bounded in frames and time.
  const FRAMES = 40_000;
  let sent = 0;
  const deadline = Date.now() + 30_000;
  await Promise.all(
    Array.from({ length: 16 }, async (_, w) => {
      while (sent < FRAMES && Date.now() < deadline) {
        let c: TestClient;
        try {
          c = w % 2 === 0 ? await TestClient.authed(gatewayPort, token) : await TestClient.connect(gatewayPort);
        } catch {
          continue; // refused while the gateway sheds connections: try again
        }
        sockets.push(c);
        // Frames go in bursts of 200 per tick: past the frame rate the gateway closes the socket.
        for (let i = 0; i < 10 && c.ws.readyState === c.ws.OPEN && sent < FRAMES; i++) {
          for (let j = 0; j < 200; j++) c.ws.send(hostileFrame(sent++));
          await sleep(20);
        }
        c.ws.terminate();
      }
    }),
  );
  for (const s of sockets.splice(0)) s.ws.terminate();
  const burstEnd = Date.now();

  // Within seconds: ready, publishing and receiving work, memory and CPU settle.
  await eventually(() => ready(metricsPort), 15_000, 'the gateway to be ready after the burst');
  const probe = await TestClient.authed(gatewayPort, token);
  sockets.push(probe);
  expect(await probe.request({ op: 'SUBSCRIBE', sub: 'after', topic: 'after.*' })).toMatchObject({ op: 'OK' });
  // As a well-behaved client does (the SDK too): a publish answered UNAVAILABLE (the database
  // probe, 2 s, can miss on a loaded machine) is retried with its id, within seconds.
  const publish = async (frame: Record<string, unknown>): Promise<Record<string, unknown>> => {
    const id = `after-${Math.random().toString(36).slice(2)}`;
    for (let attempt = 0; ; attempt++) {
      const reply = (await probe.request({ ...frame, op: 'PUBLISH', eventId: id }, 5_000)) as unknown as Record<string, unknown>;
      if (reply['op'] === 'OK' || reply['code'] !== 'UNAVAILABLE' || attempt >= 10) return reply;
      await sleep(500);
    }
  };
  expect(await publish({ topic: 'after.burst', payload: 1 })).toMatchObject({ op: 'OK' });
  await probe.waitFor((f) => f.op === 'EVENT', 10_000);
  // Events for the groups the hostile sockets joined: a membership that outlived its socket would get them.
  for (let i = 0; i < 50; i++)
    expect(await publish({ topic: `hostile.${pick(['g', 'constructor', 'toString'])}`, key: `k${i}`, payload: i })).toMatchObject({
      op: 'OK',
    });
  await sleep(Math.max(0, burstEnd + 10_000 - Date.now()));
  const logsBefore = gateway.logs.length;
  const after = { rss: rssMiB(pid), cpu: await cpuShare(pid, 5_000) };
  const rssLater = rssMiB(pid);
  const logged = gateway.logs.length - logsBefore;
  process.stderr.write(
    `\n  hostile burst: ${sent} frames; gateway baseline ${baseline.rss.toFixed(0)} MiB, ${(baseline.cpu * 100).toFixed(0)}% CPU; ` +
      `10 s after: ${after.rss.toFixed(0)} -> ${rssLater.toFixed(0)} MiB, ${(after.cpu * 100).toFixed(0)}% CPU, ${logged} log lines in 5 s\n`,
  );
  expect(sent).toBeGreaterThan(10_000);
  // Settled: not growing over 5 s, idle (a runaway spins a core), quiet, and nowhere near the heap limit.
  expect(rssLater - after.rss).toBeLessThan(40);
  expect(after.rss).toBeLessThan(baseline.rss + 250);
  expect(after.cpu).toBeLessThan(0.25);
  expect(logged).toBeLessThan(20);
  expect(await ready(metricsPort)).toBe(true);
  expect(gateway.child.exitCode).toBeNull();
}, 180_000);
