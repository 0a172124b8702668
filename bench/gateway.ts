/**
 * Gateway benchmark (`make bench-gateway`), side by side with Centrifugo. Not part of the test suite.
 *
 * The same client code drives both servers through a small protocol adapter:
 * - Outbox Hub: protocol v1 (`outbox-hub.v1`) on the gateway, with a drainer and the
 *   embedded database (SecantusDB; BENCH_SERVER picks another) behind it. A PUBLISH goes the durable path: outbox, drainer,
 *   event log, gateway tail, fan-out.
 * - Centrifugo (CENTRIFUGO, built by `make centrifugo`): JSON protocol on
 *   `/connection/websocket`, memory engine, a namespace with history and recovery;
 *   publishes go through its HTTP server API.
 *
 * Workloads, same parameters for both, one server at a time:
 * (a) BENCH_CONNECTIONS idle authenticated connections: server RSS growth per connection.
 * (b) Fan-out: one publisher, BENCH_SUBSCRIBERS (of those connections) subscribed to one
 *     topic/channel, BENCH_EVENTS events at BENCH_RATE/s: deliveries/s achieved and
 *     publish-to-deliver p50/p99 (a timestamp the publisher puts in the payload).
 *
 * Readiness, connection counts and server-side delivery counts come from the servers' own
 * health and metrics endpoints, never from counting documents (a full scan on FerretDB).
 * The single client process shares the machine's cores with the servers; it reads the
 * timestamp out of each frame's bytes instead of parsing the frame.
 *
 * BENCH_SERVERS (default `gateway,centrifugo`) picks the servers; BENCH_CPU_PROF=<dir>
 * writes a V8 CPU profile of the gateway process during the fan-out there (through the
 * inspector on a loopback port).
 * Loopback only; every loop is bounded in count and time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { PROTOCOL } from '../internal/gateway/index.js';
import { TEST_SECRET, rootToken, testToken } from '../test/harness/hub.js';
import { startBinary, type BinaryProcess } from '../test/harness/process.js';
import { freePort, startBenchServer, type TestServer } from '../test/harness/server.js';
import { percentile } from './common.js';

const CONNECTIONS = Number(process.env['BENCH_CONNECTIONS'] ?? 10_000);
const SUBSCRIBERS = Math.min(CONNECTIONS, Number(process.env['BENCH_SUBSCRIBERS'] ?? 1_000));
const EVENTS = Number(process.env['BENCH_EVENTS'] ?? 200);
const RATE = Number(process.env['BENCH_RATE'] ?? 50);
const SERVERS = (process.env['BENCH_SERVERS'] ?? 'gateway,centrifugo').split(',').map((s) => s.trim());
const CPU_PROF = process.env['BENCH_CPU_PROF'];
const CENTRIFUGO = process.env['CENTRIFUGO'] ?? '.tools/bin/centrifugo';
const CENTRIFUGO_VERSION = 'v6.9.1';
/** Per server: opening, subscribing, publishing and draining all fit in this. */
const SERVER_DEADLINE_MS = 8 * 60_000;
const OPEN_BATCH = 100;
/** The fan-out is over when nothing new arrives (client or server side) for this long. */
const STALL_MS = 5_000;
const DRAIN_TIMEOUT_MS = 120_000;

/** Marks the publish timestamp in every payload: found in the frame's bytes by both protocols. */
const MARK = Buffer.from('"bench_ts":');

/** One server under test, behind the protocol adapter the shared client code uses. */
interface Target {
  readonly label: string;
  /** Processes whose CPU is reported during the fan-out (the first is the one whose RSS is measured). */
  readonly procs: ReadonlyArray<{ name: string; pid: number }>;
  /** Opens one connection and authenticates it; protocol housekeeping (pings) is the adapter's. */
  open(): Promise<WebSocket>;
  /** Subscribes `ws` to the fan-out topic/channel; resolves on the server's reply. */
  subscribe(ws: WebSocket, i: number): Promise<void>;
  /** Sends event `i` with `ts` in its payload; failures are counted, not thrown. */
  publish(i: number, ts: number): void;
  /** Publishes answered with an error or not at all, once every reply is in (bounded). */
  publishFailures(): Promise<number>;
  /** CPU profiler of the server process (BENCH_CPU_PROF), started and stopped around the fan-out. */
  readonly profiler?: Profiler;
  /** Open client connections, from the server's metrics. */
  connections(): Promise<number>;
  /** Publication frames the server has written to clients, from its metrics. */
  delivered(): Promise<number>;
  /** Where the time goes along the server's path, from its own histograms (one line), if it has any. */
  stages?(): Promise<string>;
  stop(): Promise<void>;
}

interface Result {
  label: string;
  connections: number;
  serverConnections: number;
  openSeconds: number;
  rssBeforeKb: number;
  rssAfterKb: number;
  kbPerConnection: number;
  subscribers: number;
  offeredRate: number;
  deliveries: number;
  expected: number;
  serverDelivered: number;
  publishFailures: number;
  deliveriesPerSecond: number;
  p50: number;
  p99: number;
  cpu: Array<{ name: string; seconds: number }>;
  fanoutSeconds: number;
  load: [number, number];
  /** Where the time goes on the server's path (from its own histograms), when it reports that. */
  stages: string | undefined;
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

/** User + system CPU seconds of a process so far (/proc/<pid>/stat, clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The value of the first sample of `name` whose labels contain `labels`, from a Prometheus text page. */
async function metric(port: number, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== ' ' && line[name.length] !== '{')) continue;
    if (labels !== '' && !line.includes(labels)) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

/** The upper bounds (seconds) of the buckets holding quantiles `qs` of histogram `name`, from a Prometheus text page. */
async function histogramQuantiles(port: number, name: string, qs: number[]): Promise<number[]> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const buckets = [...text.matchAll(new RegExp(`^${name}_bucket\\{[^}]*le="([^"]+)"[^}]*\\} (\\d+)`, 'gm'))].map((m) => ({
    le: Number(m[1] === '+Inf' ? Infinity : m[1]),
    n: Number(m[2]),
  }));
  const total = buckets.at(-1)?.n ?? 0;
  return qs.map((q) => buckets.find((b) => b.n >= q * total)?.le ?? Number.NaN);
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // A server still starting refuses the connection: keep polling until the deadline.
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`benchmark timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Waits for the first frame `pick` accepts on `ws`, or fails on close/timeout. */
function reply<T>(ws: WebSocket, pick: (text: string) => T | undefined, timeoutMs = 30_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => done(new Error('no reply within the timeout')), timeoutMs);
    const onMessage = (data: Buffer): void => {
      let found: T | undefined;
      try {
        found = pick(data.toString());
      } catch (err) {
        done(err as Error);
        return;
      }
      if (found !== undefined) done(undefined, found);
    };
    const onClose = (code: number): void => done(new Error(`closed (${code}) before the reply`));
    const done = (err?: Error, value?: T): void => {
      clearTimeout(timer);
      ws.off('message', onMessage);
      ws.off('close', onClose);
      if (err) reject(err);
      else resolve(value as T);
    };
    ws.on('message', onMessage);
    ws.once('close', onClose);
  });
}

function connect(url: string, protocols: string[]): Promise<WebSocket> {
  const ws = new WebSocket(url, protocols, { perMessageDeflate: false, skipUTF8Validation: true });
  return new Promise((resolve, reject) => {
    ws.once('error', reject);
    ws.once('open', () => {
      ws.off('error', reject);
      // A socket error after the handshake shows up as a missing delivery; keep the process up.
      ws.on('error', () => undefined);
      resolve(ws);
    });
  });
}

interface Profiler {
  start(): Promise<void>;
  /** Stops profiling and writes the profile to `file` (a `.cpuprofile`, as `node --cpu-prof` writes). */
  stop(file: string): Promise<void>;
}

/**
 * A V8 CPU profiler on a Node process started with `--inspect` (`--cpu-prof` is not
 * allowed in NODE_OPTIONS, and this profiles the fan-out alone rather than the whole run).
 */
async function profiler(port: number): Promise<Profiler> {
  let targets: Array<{ webSocketDebuggerUrl: string }> = [];
  await until(
    async () => (targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as typeof targets).length > 0,
    30_000,
    'the inspector',
  );
  const ws = await connect(targets[0]?.webSocketDebuggerUrl as string, []);
  let id = 0;
  const call = async (method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> => {
    const mine = ++id;
    ws.send(JSON.stringify({ id: mine, method, params }));
    return reply(
      ws,
      (t) => {
        const m = JSON.parse(t) as { id?: number; result?: Record<string, unknown>; error?: unknown };
        if (m.id !== mine) return undefined;
        if (m.error !== undefined) throw new Error(`${method}: ${JSON.stringify(m.error)}`);
        return m.result ?? {};
      },
      120_000,
    );
  };
  await call('Profiler.enable');
  await call('Profiler.setSamplingInterval', { interval: 500 });
  return {
    start: async () => void (await call('Profiler.start')),
    async stop(file) {
      const { profile } = await call('Profiler.stop');
      await writeFile(file, JSON.stringify(profile));
      ws.terminate();
    },
  };
}

/** Outbox Hub: gateway + drainer on the embedded server (BENCH_SERVER, or SecantusDB, or MONGO_URL). */
async function startOutboxHub(db: TestServer): Promise<Target> {
  const name = `bench_gateway_${Date.now()}`;
  const [port, gatewayMetrics, drainerMetrics] = [await freePort(), await freePort(), await freePort()];
  const inspectPort = CPU_PROF === undefined ? 0 : await freePort();
  const common = { MONGO_URL: db.url, MONGO_DB: name, METRICS_HOST: '127.0.0.1', LOG_LEVEL: 'warn', OUTBOX_PARTITIONS: '16' };
  const procs: BinaryProcess[] = [];
  const stop = async (): Promise<void> => {
    for (const p of procs) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => p.exited));
  };
  try {
    procs.push(startBinary('drainer', { ...common, METRICS_PORT: String(drainerMetrics), POLL_MAX: '20ms' }));
    const gateway = startBinary('gateway', {
      ...common,
      METRICS_PORT: String(gatewayMetrics),
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_PORT: String(port),
      JWT_SECRET: TEST_SECRET,
      TAIL_POLL_MAX: '20ms',
      PUBLISH_RATE: '100000',
      PUBLISH_BURST: '100000',
      ...(inspectPort === 0 ? {} : { NODE_OPTIONS: `--inspect=127.0.0.1:${inspectPort}` }),
    });
    procs.push(gateway);
    for (const p of [gatewayMetrics, drainerMetrics]) {
      await until(async () => (await fetch(`http://127.0.0.1:${p}/readyz`)).status === 200, 60_000, 'gateway and drainer readiness');
    }
  } catch (err) {
    await stop();
    const logs = procs.map((p) => JSON.stringify(p.logs.slice(-5))).join('\n');
    throw new Error(`${(err as Error).message}; last log lines:\n${logs}`, { cause: err });
  }
  const token = await rootToken(3600);
  const url = `ws://127.0.0.1:${port}/ws`;
  const open = async (): Promise<WebSocket> => {
    const ws = await connect(url, [PROTOCOL]);
    ws.send(JSON.stringify({ op: 'AUTH', id: 'a', token }));
    await reply(ws, (t) => {
      const f = JSON.parse(t) as { op: string };
      if (f.op !== 'OK') throw new Error(`AUTH refused: ${t}`);
      return true;
    });
    return ws;
  };
  const publisher = await open();
  let published = 0;
  let failures = 0;
  let answered = 0;
  publisher.on('message', (d: Buffer) => {
    answered++;
    if ((JSON.parse(d.toString()) as { op: string }).op !== 'OK') failures++;
  });
  return {
    label: 'Outbox Hub gateway',
    procs: [
      { name: 'gateway', pid: procs[1]?.child.pid as number },
      { name: 'drainer', pid: procs[0]?.child.pid as number },
      ...(db.pid === undefined ? [] : [{ name: db.backend, pid: db.pid }]),
    ],
    open,
    async subscribe(ws, i) {
      const id = `s${i}`;
      ws.send(JSON.stringify({ op: 'SUBSCRIBE', id, sub: 'fan', topic: 'fan.out' }));
      await reply(ws, (t) => {
        if (!t.includes(`"id":"${id}"`)) return undefined;
        if ((JSON.parse(t) as { op: string }).op !== 'OK') throw new Error(`SUBSCRIBE refused: ${t}`);
        return true;
      });
    },
    publish(i, ts) {
      published++;
      publisher.send(JSON.stringify({ op: 'PUBLISH', id: `p${i}`, topic: 'fan.out', key: `k${i % 16}`, payload: { bench_ts: ts, i } }));
    },
    async publishFailures() {
      const deadline = Date.now() + 30_000;
      while (answered < published && Date.now() < deadline) await sleep(50);
      return failures + (published - answered);
    },
    ...(inspectPort === 0 ? {} : { profiler: await profiler(inspectPort) }),
    connections: async () => metric(gatewayMetrics, 'gateway_connections'),
    delivered: async () => metric(gatewayMetrics, 'gateway_frames_out_total', 'op="EVENT"'),
    async stages() {
      const ms = (qs: number[]) => qs.map((v) => (Number.isFinite(v) ? `≤ ${Math.round(v * 1000)}` : '> 30,000')).join(' / ');
      const drained = await histogramQuantiles(drainerMetrics, 'outbox_commit_to_publish_seconds', [0.5, 0.99]);
      const delivered = await histogramQuantiles(gatewayMetrics, 'gateway_publish_to_deliver_seconds', [0.5, 0.99]);
      return `outbox write → in the log (drainer) p50 / p99 ${ms(drained)} ms; outbox write → written to a subscriber's socket (gateway) ${ms(delivered)} ms (histogram buckets)`;
    },
    async stop() {
      publisher.terminate();
      await stop();
    },
  };
}

/** Centrifugo with a generated config: memory engine, namespace `bench` with history and recovery. */
async function startCentrifugo(): Promise<Target> {
  const dir = await mkdtemp(join(tmpdir(), 'outbox-hub-bench-centrifugo-'));
  const port = await freePort();
  const secret = 'bench-centrifugo-hmac-secret-at-least-32-bytes';
  const apiKey = 'bench-centrifugo-api-key';
  const config = {
    http_server: { address: '127.0.0.1', port },
    log: { level: 'warn' },
    engine: { type: 'memory' },
    client: {
      token: { hmac_secret_key: secret },
      connection_limit: 1_000_000,
      user_connection_limit: 0,
      connection_rate_limit: 0,
    },
    http_api: { key: apiKey },
    channel: {
      namespaces: [
        {
          name: 'bench',
          history_size: 1000,
          history_ttl: '300s',
          force_recovery: true,
          force_positioning: true,
          allow_subscribe_for_client: true,
        },
      ],
    },
    prometheus: { enabled: true },
    health: { enabled: true },
    usage_stats: { disabled: true },
  };
  await writeFile(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const child: ChildProcess = spawn(CENTRIFUGO, ['--config', join(dir, 'config.json')], { stdio: ['ignore', 'ignore', 'pipe'] });
  const stderr: string[] = [];
  child.stderr?.on('data', (d: Buffer) => void stderr.push(d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const stop = async (): Promise<void> => {
    child.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000)]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await spawned.catch((err: unknown) => {
      throw new Error(`cannot start ${CENTRIFUGO} (run 'make centrifugo'): ${String(err)}`);
    });
    await until(async () => (await fetch(`http://127.0.0.1:${port}/health`)).status === 200, 60_000, 'Centrifugo health');
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}; stderr: ${stderr.join('').slice(-2000)}`, { cause: err });
  }
  const token = await testToken({}, { sub: 'bench', ttlS: 3600, secret });
  const url = `ws://127.0.0.1:${port}/connection/websocket`;
  const pending: Array<Promise<boolean>> = [];
  const open = async (): Promise<WebSocket> => {
    const ws = await connect(url, []);
    // Server pings are `{}` lines (possibly batched with other lines in one frame); a client
    // that does not answer is disconnected after the ping interval.
    ws.on('message', (d: Buffer) => {
      if ((d.length === 2 && d[0] === 0x7b && d[1] === 0x7d) || d.indexOf('\n{}') !== -1 || d.indexOf('{}\n') === 0) ws.send('{}');
    });
    ws.send(JSON.stringify({ id: 1, connect: { token } }));
    await reply(ws, (t) => lineWithId(t, 1, 'connect'));
    return ws;
  };
  return {
    label: `Centrifugo ${CENTRIFUGO_VERSION}`,
    procs: [{ name: 'Centrifugo', pid: child.pid as number }],
    open,
    async subscribe(ws) {
      ws.send(JSON.stringify({ id: 2, subscribe: { channel: 'bench:fan' } }));
      await reply(ws, (t) => lineWithId(t, 2, 'subscribe'));
    },
    publish(i, ts) {
      pending.push(
        fetch(`http://127.0.0.1:${port}/api/publish`, {
          method: 'POST',
          headers: { 'X-API-Key': apiKey, 'content-type': 'application/json' },
          body: JSON.stringify({ channel: 'bench:fan', data: { bench_ts: ts, i } }),
        }).then(
          async (r) => r.status === 200 && !(await r.text()).includes('"error"'),
          () => false,
        ),
      );
    },
    async publishFailures() {
      const results = await Promise.race([Promise.all(pending), sleep(30_000).then(() => [] as boolean[])]);
      return pending.length - results.filter(Boolean).length;
    },
    connections: async () => metric(port, 'centrifugo_node_num_clients'),
    delivered: async () => metric(port, 'centrifugo_transport_messages_sent', 'frame_type="push_publication"'),
    stop,
  };
}

/** In a Centrifugo frame (newline-separated replies), the reply to command `id` of `kind`. */
function lineWithId(text: string, id: number, kind: string): true | undefined {
  for (const line of text.split('\n')) {
    if (line === '' || line === '{}') continue;
    const f = JSON.parse(line) as Record<string, unknown>;
    if (f['id'] !== id) continue;
    if (f['error'] !== undefined || f[kind] === undefined) throw new Error(`${kind} refused: ${line}`);
    return true;
  }
  return undefined;
}

/** Runs both workloads against `target` with the shared client code. */
async function run(target: Target): Promise<Result> {
  const started = Date.now();
  const load0 = loadavg()[0] as number;
  const sockets: WebSocket[] = [];
  try {
    const rssPid = target.procs[0]?.pid as number;
    await sleep(1000);
    const rssBeforeKb = rssKb(rssPid);

    // (a) idle authenticated connections, opened OPEN_BATCH at a time
    const t0 = Date.now();
    for (let i = 0; i < CONNECTIONS && Date.now() - started < SERVER_DEADLINE_MS; i += OPEN_BATCH) {
      sockets.push(...(await Promise.all(Array.from({ length: Math.min(OPEN_BATCH, CONNECTIONS - i) }, () => target.open()))));
    }
    const openSeconds = (Date.now() - t0) / 1000;
    // The publisher is a connection too (gateway) or none (Centrifugo's HTTP API): count ours only.
    let serverConnections = 0;
    await until(
      async () => (serverConnections = await target.connections()) >= sockets.length,
      30_000,
      `${target.label} to report ${sockets.length} connections`,
    );
    await sleep(3000);
    const rssAfterKb = rssKb(rssPid);

    // (b) fan-out to the first SUBSCRIBERS of those connections
    const subs = sockets.slice(0, SUBSCRIBERS);
    const expected = EVENTS * subs.length;
    const latencies = new Float64Array(expected);
    let deliveries = 0;
    let first = 0;
    let last = 0;
    const onFrame = (d: Buffer): void => {
      let at = d.indexOf(MARK);
      if (at === -1) return;
      const now = Date.now();
      first ||= now;
      last = now;
      while (at !== -1) {
        let ts = 0;
        for (let j = at + MARK.length; j < d.length; j++) {
          const c = d[j] as number;
          if (c < 0x30 || c > 0x39) break;
          ts = ts * 10 + (c - 0x30);
        }
        if (deliveries < expected) latencies[deliveries] = now - ts;
        deliveries++;
        at = d.indexOf(MARK, at + MARK.length);
      }
    };
    for (let i = 0; i < subs.length; i += OPEN_BATCH) {
      await Promise.all(subs.slice(i, i + OPEN_BATCH).map((ws, j) => target.subscribe(ws, i + j)));
    }
    for (const ws of subs) ws.on('message', onFrame);
    const deliveredBefore = await target.delivered();
    await target.profiler?.start();
    const cpu0 = target.procs.map((p) => cpuSeconds(p.pid));
    const client0 = process.cpuUsage();
    const f0 = Date.now();
    for (let i = 0; i < EVENTS && Date.now() - started < SERVER_DEADLINE_MS; i++) {
      target.publish(i, Date.now());
      const due = f0 + ((i + 1) * 1000) / RATE;
      if (due > Date.now()) await sleep(due - Date.now());
    }
    const offeredRate = EVENTS / ((Date.now() - f0) / 1000);
    // Progress from the server's own delivery counter: done when the client has every
    // delivery, or when neither side has moved for STALL_MS.
    let serverDelivered = 0;
    let lastMove = Date.now();
    let seen = [-1, -1];
    const drainDeadline = Date.now() + DRAIN_TIMEOUT_MS;
    while (deliveries < expected && Date.now() < drainDeadline && Date.now() - lastMove < STALL_MS) {
      await sleep(500);
      serverDelivered = (await target.delivered()) - deliveredBefore;
      if (serverDelivered !== seen[0] || deliveries !== seen[1]) [seen, lastMove] = [[serverDelivered, deliveries], Date.now()];
    }
    const fanoutSeconds = (Date.now() - f0) / 1000;
    if (target.profiler && CPU_PROF !== undefined) {
      const file = join(CPU_PROF, `gateway-fanout-${Date.now()}.cpuprofile`);
      await target.profiler.stop(file);
      process.stdout.write(`${target.label}: CPU profile of the fan-out in ${file}\n`);
    }
    const client = process.cpuUsage(client0);
    const cpu = [
      ...target.procs.map((p, i) => ({ name: p.name, seconds: cpuSeconds(p.pid) - (cpu0[i] as number) })),
      { name: 'client', seconds: (client.user + client.system) / 1e6 },
    ];
    serverDelivered = (await target.delivered()) - deliveredBefore;
    const publishFailures = await target.publishFailures();
    const sorted = latencies.subarray(0, Math.min(deliveries, expected)).sort();
    return {
      label: target.label,
      connections: sockets.length,
      serverConnections,
      openSeconds,
      rssBeforeKb,
      rssAfterKb,
      kbPerConnection: (rssAfterKb - rssBeforeKb) / sockets.length,
      subscribers: subs.length,
      offeredRate,
      deliveries,
      expected,
      serverDelivered,
      publishFailures,
      deliveriesPerSecond: deliveries / Math.max(0.001, (last - first) / 1000),
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      cpu,
      fanoutSeconds,
      load: [load0, loadavg()[0] as number],
      stages: await target.stages?.(),
    };
  } finally {
    for (const ws of sockets) ws.terminate();
    await target.stop();
  }
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const ratio = (a: number, b: number): string => (b > 0 && Number.isFinite(a / b) ? `${(a / b).toFixed(2)}x` : 'n/a');

function report(results: Result[]): string {
  const [a, b] = results;
  const col = (f: (r: Result) => string): string => results.map(f).join(' | ');
  const rows: Array<[string, (r: Result) => string, ((x: Result, y: Result) => string) | undefined]> = [
    [
      `(a) ${int(CONNECTIONS)} idle authenticated connections: server RSS per connection (KB)`,
      (r) => `**${r.kbPerConnection.toFixed(1)}**`,
      (x, y) => ratio(x.kbPerConnection, y.kbPerConnection),
    ],
    ['(a) server RSS before → after (MB)', (r) => `${int(r.rssBeforeKb / 1024)} → ${int(r.rssAfterKb / 1024)}`, undefined],
    ['(a) time to open and authenticate them (s)', (r) => r.openSeconds.toFixed(1), (x, y) => ratio(x.openSeconds, y.openSeconds)],
    [
      `(b) deliveries/s, 1 publisher → ${int(SUBSCRIBERS)} subscribers, ${int(EVENTS)} events at ${RATE}/s (offered ${int(RATE * SUBSCRIBERS)}/s)`,
      (r) => `**${int(r.deliveriesPerSecond)}**`,
      (x, y) => ratio(x.deliveriesPerSecond, y.deliveriesPerSecond),
    ],
    ['(b) publish-to-deliver p50 (ms)', (r) => int(r.p50), (x, y) => ratio(x.p50, y.p50)],
    ['(b) publish-to-deliver p99 (ms)', (r) => `**${int(r.p99)}**`, (x, y) => ratio(x.p99, y.p99)],
    ['(b) delivered to the client / expected', (r) => `${int(r.deliveries)} / ${int(r.expected)}`, undefined],
  ];
  const lines = [
    `| workload | ${col((r) => r.label)} |${b ? ` ${a?.label} ÷ ${b.label} |` : ''}`,
    `|---|${results.map(() => '---:').join('|')}|${b ? '---:|' : ''}`,
    ...rows.map(([name, f, cmp]) => `| ${name} | ${col(f)} |${b && a ? ` ${cmp ? cmp(a, b) : ''} |` : ''}`),
  ];
  const notes = results.map(
    (r) =>
      `- ${r.label}: server reported ${int(r.serverConnections)} connections and wrote ${int(r.serverDelivered)} publication frames; ` +
      `${r.publishFailures} failed publishes; events offered at ${r.offeredRate.toFixed(1)}/s; ` +
      `CPU during the ${r.fanoutSeconds.toFixed(1)} s fan-out: ${r.cpu.map((c) => `${c.name} ${c.seconds.toFixed(1)} s`).join(', ')}; ` +
      `load average ${r.load[0].toFixed(1)} → ${r.load[1].toFixed(1)}` +
      (r.stages ? `; ${r.stages}` : ''),
  );
  const gateway = results.find((r) => r.label === 'Outbox Hub gateway');
  if (gateway) {
    const met = (ok: boolean): string => (ok ? 'met' : '**not met**');
    notes.push(
      `- gateway targets: < 30 KB per idle connection: ${met(gateway.kbPerConnection < 30)}; publish-to-deliver p99 ≤ 150 ms at ` +
        `${int(RATE * SUBSCRIBERS)} offered deliveries/s on the durable path: ${met(gateway.p99 <= 150 && gateway.deliveries === gateway.expected)}`,
    );
  }
  return [...lines, '', ...notes].join('\n');
}

const results: Result[] = [];
process.stdout.write(
  `gateway benchmark: ${int(CONNECTIONS)} connections, ${int(SUBSCRIBERS)} subscribers, ${int(EVENTS)} events at ${RATE}/s; ` +
    `servers, their databases and this single client process all share this machine's cores\n`,
);
if (SERVERS.includes('gateway')) {
  const db = await startBenchServer();
  try {
    results.push(await run(await startOutboxHub(db)));
  } finally {
    await db.stop();
  }
  process.stdout.write(`${results.at(-1)?.label}: done\n`);
}
if (SERVERS.includes('centrifugo')) {
  results.push(await run(await startCentrifugo()));
  process.stdout.write(`${results.at(-1)?.label}: done\n`);
}
process.stdout.write(`\n${report(results)}\n`);
