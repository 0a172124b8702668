/**
 * What tracing costs (`make bench-tracing`). Not part of the test suite.
 *
 * Three modes, each run BENCH_ROUNDS times, interleaved (off, unsampled, sampled, off, ...)
 * so the machine's drift spreads over all of them:
 * - off: no OTEL_* variable, no SDK loaded;
 * - unsampled: OTEL_EXPORTER_OTLP_ENDPOINT set and OTEL_TRACES_SAMPLER=always_off (the SDK
 *   runs, every span is non-recording);
 * - sampled: the endpoint and the default parentbased_always_on, every message carrying a
 *   sampled parent: every span is recorded and exported.
 * Every message carries a W3C trace context (as a traced application writes them), in every mode.
 *
 * Measured: (1) drain throughput of a BENCH_BACKLOG backlog (default 10,000) with one
 * drainer, from its own `outbox_published_total`; (2) publish-to-deliver through a
 * gateway and a drainer: one WebSocket publisher at BENCH_RATE/s (default 200) for
 * BENCH_SECONDS (5) with a trace context on every PUBLISH, one live subscriber timing
 * each event from the publisher's timestamp in the payload. Spans go to an OTLP/HTTP
 * sink in this process that accepts and counts them (the collector's cost is not the hub's).
 * Uses BENCH_SERVER or MONGO_URL like the other benchmarks, else SecantusDB.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { MongoClient } from 'mongodb';
import { createOutbox, migrateOutbox } from '../internal/outbox/index.js';
import type { ServerFrame } from '../internal/protocol/index.js';
import { TEST_SECRET, rootToken } from '../test/harness/hub.js';
import { startBinary } from '../test/harness/process.js';
import { freePort, startBenchServer } from '../test/harness/server.js';
import { TestClient } from '../test/harness/ws-client.js';
import { median, metric, percentile, stop, until } from './common.js';

const BACKLOG = Number(process.env['BENCH_BACKLOG'] ?? 30_000);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const RATE = Number(process.env['BENCH_RATE'] ?? 200);
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 5);
const PARTITIONS = 16;
const PAD = 'x'.repeat(200);
const MODES = ['off', 'unsampled', 'sampled'] as const;
type Mode = (typeof MODES)[number];

/** A sampled W3C traceparent with fresh ids (a traced writer's). */
const traceparent = (): string => `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;

/** An OTLP/HTTP receiver that answers 200 and counts what it got. */
async function otlpSink(): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
  let requests = 0;
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      requests++;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: () => requests,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

function modeEnv(mode: Mode, sink: string): Record<string, string> {
  if (mode === 'off') return {};
  return { OTEL_EXPORTER_OTLP_ENDPOINT: sink, OTEL_TRACES_SAMPLER: mode === 'unsampled' ? 'always_off' : 'parentbased_always_on' };
}

/** CPU seconds `port`'s process has used (prom-client's process_cpu_seconds_total). */
const cpu = (port: number): Promise<number> => metric(port, 'process_cpu_seconds_total');

/**
 * Drain rate in msg/s of a pre-filled backlog with one drainer in `mode`, and the drainer's
 * CPU time per 1,000 messages meanwhile (steadier than the rate: the database's pace varies).
 */
async function drainRate(client: MongoClient, url: string, mode: Mode, sink: string): Promise<{ rate: number; cpuMs: number }> {
  const dbName = `bench_tracing_drain_${mode}_${Date.now()}`;
  const db = client.db(dbName);
  await migrateOutbox(db, { partitions: PARTITIONS });
  const outbox = createOutbox(db, { partitions: PARTITIONS });
  for (let i = 0; i < BACKLOG; i += 500) {
    await outbox.addMany(
      Array.from({ length: Math.min(500, BACKLOG - i) }, (_, j) => ({
        topic: 'bench.order',
        key: `k${(i + j) % 1000}`,
        payload: { i: i + j, pad: PAD },
        traceparent: traceparent(),
      })),
    );
  }
  const port = await freePort();
  const drainer = startBinary('drainer', {
    MONGO_URL: url,
    MONGO_DB: dbName,
    OUTBOX_PARTITIONS: String(PARTITIONS),
    METRICS_HOST: '127.0.0.1',
    METRICS_PORT: String(port),
    LOG_LEVEL: 'warn',
    ...modeEnv(mode, sink),
  });
  try {
    let first = 0;
    let firstCount = 0;
    let firstCpu = 0;
    await until(
      async () => {
        const n = await metric(port, 'outbox_published_total');
        if (n > 0 && first === 0) [first, firstCount, firstCpu] = [performance.now(), n, await cpu(port)];
        return n >= BACKLOG;
      },
      600_000,
      'the backlog to drain',
    );
    const seconds = (performance.now() - first) / 1000;
    return { rate: (BACKLOG - firstCount) / seconds, cpuMs: (((await cpu(port)) - firstCpu) * 1e6) / (BACKLOG - firstCount) };
  } finally {
    await stop([drainer]);
    await db.dropDatabase();
  }
}

/**
 * Publish-to-deliver latencies (ms, sorted) through a gateway and a drainer in `mode`, and
 * the two processes' CPU time per 1,000 messages.
 */
async function publishToDeliver(
  client: MongoClient,
  url: string,
  mode: Mode,
  sink: string,
): Promise<{ latencies: number[]; cpuMs: number }> {
  const dbName = `bench_tracing_p2d_${mode}_${Date.now()}`;
  const db = client.db(dbName);
  await migrateOutbox(db, { partitions: PARTITIONS });
  const [gwPort, gwMetrics, drMetrics] = await Promise.all([freePort(), freePort(), freePort()]);
  const common = {
    MONGO_URL: url,
    MONGO_DB: dbName,
    OUTBOX_PARTITIONS: String(PARTITIONS),
    METRICS_HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    POLL_MAX: '20ms',
    TAIL_POLL_MAX: '20ms',
    ...modeEnv(mode, sink),
  };
  const procs = [
    startBinary('drainer', { ...common, METRICS_PORT: String(drMetrics) }),
    startBinary('gateway', {
      ...common,
      METRICS_PORT: String(gwMetrics),
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_PORT: String(gwPort),
      JWT_SECRET: TEST_SECRET,
      PUBLISH_RATE: '100000',
      PUBLISH_BURST: '100000',
    }),
  ];
  try {
    for (const p of [drMetrics, gwMetrics]) {
      await until(async () => (await fetch(`http://127.0.0.1:${p}/readyz`).catch(() => undefined))?.status === 200, 60_000, 'readiness');
    }
    const token = await rootToken(600);
    const sub = await TestClient.authed(gwPort, token);
    const pub = await TestClient.authed(gwPort, token);
    const latencies: number[] = [];
    sub.ws.on('message', (data) => {
      const f = JSON.parse((data as Buffer).toString()) as ServerFrame;
      if (f.op === 'EVENT') latencies.push(Date.now() - (f.event.payload as { t: number }).t);
    });
    await sub.request({ op: 'SUBSCRIBE', sub: 's', topic: 'bench.*' });
    const cpuBefore = (await cpu(drMetrics)) + (await cpu(gwMetrics));
    const total = RATE * SECONDS;
    const start = Date.now();
    let sent = 0;
    while (sent < total) {
      const due = Math.min(total, Math.floor(((Date.now() - start) / 1000) * RATE));
      for (; sent < due; sent++) {
        pub.ws.send(
          JSON.stringify({
            op: 'PUBLISH',
            id: `p${sent}`,
            topic: 'bench.order',
            key: `k${sent % 100}`,
            payload: { t: Date.now(), pad: PAD },
            traceparent: traceparent(),
          }),
        );
      }
      await sleep(5);
    }
    await until(() => Promise.resolve(latencies.length >= total), 120_000, 'every event delivered');
    const cpuMs = (((await cpu(drMetrics)) + (await cpu(gwMetrics)) - cpuBefore) * 1e6) / total;
    sub.close();
    pub.close();
    return { latencies: latencies.sort((a, b) => a - b), cpuMs };
  } finally {
    await stop(procs);
    await db.dropDatabase();
  }
}

const server = await startBenchServer();
const client = await new MongoClient(server.url).connect();
const sink = await otlpSink();
try {
  const drain: Record<Mode, number[]> = { off: [], unsampled: [], sampled: [] };
  const p99: Record<Mode, number[]> = { off: [], unsampled: [], sampled: [] };
  const p50: Record<Mode, number[]> = { off: [], unsampled: [], sampled: [] };
  const drainCpu: Record<Mode, number[]> = { off: [], unsampled: [], sampled: [] };
  const pathCpu: Record<Mode, number[]> = { off: [], unsampled: [], sampled: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of MODES) {
      const d = await drainRate(client, server.url, mode, sink.url);
      drain[mode].push(d.rate);
      drainCpu[mode].push(d.cpuMs);
      const { latencies: lat, cpuMs } = await publishToDeliver(client, server.url, mode, sink.url);
      p50[mode].push(percentile(lat, 50));
      p99[mode].push(percentile(lat, 99));
      pathCpu[mode].push(cpuMs);
      console.log(
        `round ${round + 1} ${mode}: drain ${d.rate.toFixed(0)} msg/s (${d.cpuMs.toFixed(0)} CPU-ms per 1,000), ` +
          `publish-to-deliver p50 ${p50[mode].at(-1)} ms, p99 ${p99[mode].at(-1)} ms (${cpuMs.toFixed(0)} CPU-ms per 1,000)`,
      );
    }
  }
  console.log(
    `\nserver: ${server.backend}; backlog ${BACKLOG}, 1 drainer; ${RATE}/s for ${SECONDS} s through a gateway; median of ${ROUNDS} rounds`,
  );
  console.log(`OTLP requests received by the sink: ${sink.requests()}\n`);
  console.log(
    '| tracing | drain msg/s | vs off | drainer CPU-ms per 1,000 | vs off | publish-to-deliver p50 / p99 (ms) | drainer + gateway CPU-ms per 1,000 (with 20 ms polling) | vs off |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  const vs = (xs: number[], off: number[]): string => `${((median(xs) / median(off) - 1) * 100).toFixed(1)} %`;
  for (const mode of MODES) {
    console.log(
      `| ${mode} | ${median(drain[mode]).toFixed(0)} | ${vs(drain[mode], drain.off)} | ${median(drainCpu[mode]).toFixed(0)} | ${vs(drainCpu[mode], drainCpu.off)} | ` +
        `${median(p50[mode])} / ${median(p99[mode])} | ${median(pathCpu[mode]).toFixed(0)} | ${vs(pathCpu[mode], pathCpu.off)} |`,
    );
  }
} finally {
  await sink.close();
  await client.close();
  await server.stop();
}
