/**
 * Gateway benchmark (`make bench-gateway`). Not part of the test suite.
 *
 * (a) BENCH_CONNECTIONS idle authenticated connections: gateway RSS growth per
 *     connection (target: 10,000 at < 30 KB each).
 * (b) Fan-out: one publisher, BENCH_SUBSCRIBERS live subscribers on one topic,
 *     BENCH_EVENTS events at BENCH_RATE/s: deliveries per second and
 *     publish-to-deliver latency (outbox write to client receipt).
 * Loopback only; every loop is bounded in count and time.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { PROTOCOL } from '../internal/gateway/index.js';
import { TEST_SECRET, rootToken } from '../test/harness/hub.js';
import { startBinary, type BinaryProcess } from '../test/harness/process.js';
import { freePort, startTestServer } from '../test/harness/server.js';

const CONNECTIONS = Number(process.env['BENCH_CONNECTIONS'] ?? 10_000);
const SUBSCRIBERS = Number(process.env['BENCH_SUBSCRIBERS'] ?? 1_000);
const EVENTS = Number(process.env['BENCH_EVENTS'] ?? 200);
const RATE = Number(process.env['BENCH_RATE'] ?? 50);
const DEADLINE_MS = 10 * 60_000;

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function open(port: number, token: string): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, [PROTOCOL], { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once('error', reject);
    ws.once('open', () => {
      ws.send(JSON.stringify({ op: 'AUTH', id: 'a', token }));
      ws.once('message', (d) => (JSON.parse(d.toString()).op === 'OK' ? resolve() : reject(new Error(d.toString()))));
    });
  });
  return ws;
}

const server = await startTestServer();
const db = `bench_gateway_${Date.now()}`;
const port = await freePort();
const procs: BinaryProcess[] = [];
const sockets: WebSocket[] = [];
const started = Date.now();
try {
  const common = {
    MONGO_URL: server.url,
    MONGO_DB: db,
    METRICS_HOST: '127.0.0.1',
    METRICS_PORT: '0',
    LOG_LEVEL: 'warn',
    OUTBOX_PARTITIONS: '16',
  };
  procs.push(startBinary('drainer', { ...common, POLL_MAX: '20ms' }));
  const gateway = startBinary('gateway', {
    ...common,
    LOG_LEVEL: 'info',
    GATEWAY_HOST: '127.0.0.1',
    GATEWAY_PORT: String(port),
    JWT_SECRET: TEST_SECRET,
    TAIL_POLL_MAX: '20ms',
    PUBLISH_RATE: '100000',
    PUBLISH_BURST: '100000',
  });
  procs.push(gateway);
  await gateway.waitForLog((l) => l.msg === 'gateway listening', 60_000);
  const pid = gateway.child.pid as number;
  await sleep(1000);
  const before = rssKb(pid);
  const token = await rootToken(3600);

  // (a) idle connections, opened 100 at a time
  const t0 = Date.now();
  for (let i = 0; i < CONNECTIONS && Date.now() - started < DEADLINE_MS; i += 100) {
    sockets.push(...(await Promise.all(Array.from({ length: Math.min(100, CONNECTIONS - i) }, () => open(port, token)))));
  }
  const openSeconds = (Date.now() - t0) / 1000;
  await sleep(3000);
  const after = rssKb(pid);
  const perConn = ((after - before) * 1024) / sockets.length;
  process.stdout.write(
    `(a) ${sockets.length} authenticated idle connections in ${openSeconds.toFixed(1)} s; gateway RSS ${(before / 1024).toFixed(0)} MB -> ${(after / 1024).toFixed(0)} MB = ${(perConn / 1024).toFixed(1)} KB per connection\n`,
  );

  // (b) fan-out to SUBSCRIBERS of those connections
  const subs = sockets.slice(0, SUBSCRIBERS);
  const latencies: number[] = [];
  let deliveries = 0;
  let first = 0;
  let last = 0;
  await Promise.all(
    subs.map(
      (ws, i) =>
        new Promise<void>((resolve) => {
          ws.on('message', (d) => {
            const f = JSON.parse(d.toString());
            if (f.op === 'OK' && f.id === `s${i}`) return resolve();
            if (f.op !== 'EVENT') return;
            const now = Date.now();
            deliveries++;
            first ||= now;
            last = now;
            latencies.push(now - Date.parse(f.event.createdAt));
          });
          ws.send(JSON.stringify({ op: 'SUBSCRIBE', id: `s${i}`, sub: 'fan', topic: 'fan.out' }));
        }),
    ),
  );
  const pub = await open(port, token);
  sockets.push(pub);
  const p0 = Date.now();
  for (let i = 0; i < EVENTS; i++) {
    pub.send(JSON.stringify({ op: 'PUBLISH', id: `p${i}`, topic: 'fan.out', key: `k${i % 16}`, payload: { i } }));
    const due = p0 + ((i + 1) * 1000) / RATE;
    if (due > Date.now()) await sleep(due - Date.now());
  }
  const expected = EVENTS * subs.length;
  const waitUntil = Date.now() + 120_000;
  while (deliveries < expected && Date.now() < waitUntil) await sleep(100);
  latencies.sort((a, b) => a - b);
  const seconds = Math.max(0.001, (last - first) / 1000);
  process.stdout.write(
    `(b) 1 publisher -> ${subs.length} subscribers, ${EVENTS} events at ${RATE}/s: ${deliveries}/${expected} delivered, ${(deliveries / seconds).toFixed(0)} deliveries/s; publish-to-deliver p50 ${percentile(latencies, 50)} ms, p99 ${percentile(latencies, 99)} ms\n`,
  );
} finally {
  for (const ws of sockets) ws.terminate();
  for (const p of procs) p.kill('SIGTERM');
  await Promise.all(procs.map((p) => p.exited));
  await server.stop();
}
