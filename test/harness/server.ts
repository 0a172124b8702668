/**
 * Picks and runs the MongoDB-wire servers for tests, benchmarks and `make dev`:
 * MONGO_URL if set; else MongoDB in Docker via @testcontainers/mongodb (single-node
 * replica set) when a Docker engine answers; else SecantusDB (`secantusd-rs`: MongoDB's
 * wire protocol over WiredTiger, a single-node replica set with transactions and change
 * streams) built by the Makefile into .tools/bin. Beside the primary server every test
 * run starts FerretDB 1.24 (SQLite backend) and mongo-java-server (in-memory), so suites
 * that must hold on every wire server run on three independent ones.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative, resolve, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MongoClient } from 'mongodb';
import type { ServerCapabilities } from '../../internal/mongo/index.js';

/** Environment variable through which the global setup hands detected capabilities to test workers. */
export const CAPABILITIES_ENV = 'OUTBOX_HUB_TEST_CAPS';

/**
 * Environment variable through which the global setup hands every server of the run to test
 * workers: JSON {@link TestServerEntry}[] (see test/harness/servers.ts).
 */
export const SERVERS_ENV = 'OUTBOX_HUB_TEST_SERVERS';

/** Which server a run used. */
export type Backend = 'MONGO_URL' | 'testcontainers' | 'secantusdb' | 'ferretdb' | 'mongo-java-server';

/** The servers the harness can start itself. */
export type EmbeddedBackend = Extract<Backend, 'secantusdb' | 'ferretdb' | 'mongo-java-server'>;

/** One server of the run as the workers see it; `missing` says why it could not start. */
export type TestServerEntry =
  | {
      readonly name: string;
      readonly primary: boolean;
      readonly backend: Backend;
      readonly url: string;
      readonly capabilities: ServerCapabilities;
    }
  | { readonly name: string; readonly primary: false; readonly missing: string };

/** A running test server. */
export interface TestServer {
  readonly url: string;
  readonly backend: Backend;
  /** Process id of a server we started (for teardown from another module, and fault injection). */
  readonly pid?: number;
  /** Scratch directory we created. */
  readonly dir?: string;
  stop(): Promise<void>;
}

/** Where the Makefile puts FerretDB. */
export function ferretdbBinary(root = process.cwd()): string {
  return process.env['FERRETDB_BIN'] ?? resolve(root, '.tools/bin/ferretdb');
}

/**
 * Ports the kernel hands out by itself: to `listen(0)` and as the source port of every
 * outgoing connection. A port picked from that range and freed again can be taken by any
 * connection of the run (the many database clients of parallel test files) before the
 * process it was picked for binds it: `EADDRINUSE`, seen in a CI run. So ports are picked below it.
 */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 0 ? low : 32_768;
  } catch {
    return 32_768; // not Linux: its usual default
  }
}

/** Picking state of this process: a slice of its own and the next port in it. */
const picker = (() => {
  // From 20000 to 30000 (or the ephemeral range, if lower): below, a local cluster's kubelet,
  // kube-proxy and controllers listen on fixed ports (10248-10259); above, its NodePorts. A
  // machine whose ephemeral range starts lower still has the bind check.
  const base = 20_000;
  const low = ephemeralLow();
  const top = low >= base + 2_000 ? Math.min(low, 30_000) : 30_000;
  // Each jest worker (and the parent, 0) picks in its own slice, so two never pick alike.
  const slices = 8;
  const size = Math.floor((top - base) / slices);
  const slice = Number(process.env['JEST_WORKER_ID'] ?? 0) % slices;
  // A random start, so that a run after a killed one does not begin on its ports.
  return { start: base + slice * size, size, next: Math.floor(Math.random() * size) };
})();

function canBind(port: number): Promise<boolean> {
  return new Promise((resolveBind) => {
    const srv = createServer();
    srv.once('error', () => resolveBind(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolveBind(true)));
  });
}

/**
 * A free loopback TCP port for a server a test starts: outside the kernel's ephemeral range
 * (see {@link ephemeralLow}), from this process's own slice, never the same twice in a row.
 */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < picker.size; tries++) {
    const port = picker.start + (picker.next++ % picker.size);
    if (await canBind(port)) return port;
  }
  throw new Error('no free port below the ephemeral range');
}

/**
 * Keeps `port` (0: a free one) taken while no server is on it, so that no other process of
 * the run binds it meanwhile: every connection is reset at once, which a client sees like an
 * unreachable server (a network error). `release` frees the port for the real server.
 */
export async function holdPort(port = 0): Promise<{ port: number; release: () => Promise<void> }> {
  const held = new Set<Socket>();
  const srv = createServer((socket) => {
    held.add(socket);
    socket.on('error', () => undefined); // the reset is the point; its echo is not news
    socket.once('close', () => held.delete(socket));
    socket.resetAndDestroy();
  });
  await new Promise<void>((resolveListen, reject) => {
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => resolveListen());
  });
  const addr = srv.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : port,
    release: () =>
      new Promise<void>((resolveClose) => {
        for (const s of held) s.destroy();
        srv.close(() => resolveClose());
      }),
  };
}

/** True when a Docker engine answers (testcontainers can run). */
export async function dockerReachable(): Promise<boolean> {
  const host = process.env['DOCKER_HOST'];
  if (host && !host.startsWith('unix://')) return true;
  const socketPath = host ? host.slice('unix://'.length) : '/var/run/docker.sock';
  if (!existsSync(socketPath)) return false;
  return new Promise((ok) => {
    const req = request({ socketPath, path: '/_ping', timeout: 2000 }, (res) => {
      res.resume();
      ok(res.statusCode === 200);
    });
    req.on('error', () => ok(false));
    req.on('timeout', () => {
      req.destroy();
      ok(false);
    });
    req.end();
  });
}

async function waitForServer(url: string, child: ChildProcess, timeoutMs: number, what = 'FerretDB'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode}`);
    const client = new MongoClient(url, { serverSelectionTimeoutMS: 500 });
    try {
      await client.connect();
      await client.db('admin').command({ ping: 1 });
      return;
    } catch (err) {
      lastErr = err;
    } finally {
      await client.close().catch(() => undefined);
    }
    await sleep(100);
  }
  throw new Error(`${what} did not answer within ${timeoutMs} ms: ${String(lastErr)}`);
}

/** Starts FerretDB on a free loopback port with a fresh SQLite directory. */
export async function startFerretDB(
  options: { binary?: string; quiet?: boolean; dataDir?: string; detached?: boolean; port?: number } = {},
): Promise<TestServer> {
  const binary = options.binary ?? ferretdbBinary();
  if (!existsSync(binary)) throw new Error(`FerretDB not found at ${binary}: run 'make tools' (or set MONGO_URL)`);
  const keep = options.dataDir !== undefined;
  const dir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'outbox-hub-ferretdb-')));
  const [port, debugPort] = [options.port ?? (await freePort()), await freePort()];
  const child = spawn(
    binary,
    [
      '--handler=sqlite',
      `--sqlite-url=file:${dir}/`,
      `--state-dir=${dir}`,
      `--listen-addr=127.0.0.1:${port}`,
      `--debug-addr=127.0.0.1:${debugPort}`,
      '--telemetry=disable',
      '--log-level=error',
    ],
    { stdio: ['ignore', options.quiet === false ? 'inherit' : 'ignore', 'inherit'], detached: options.detached ?? false },
  );
  const url = `mongodb://127.0.0.1:${port}/`;
  try {
    await waitForServer(url, child, 30_000);
  } catch (err) {
    child.kill('SIGKILL');
    if (!keep) await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    url,
    backend: 'ferretdb',
    ...(child.pid === undefined ? {} : { pid: child.pid }),
    ...(keep ? {} : { dir }),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        child.kill('SIGTERM');
        await Promise.race([exited, sleep(5000)]);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
      if (!keep) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Where the Makefile puts SecantusDB's server. */
export function secantusBinary(root = process.cwd()): string {
  return process.env['SECANTUS_BIN'] ?? resolve(root, '.tools/bin/secantusd-rs');
}

/**
 * Starts SecantusDB on a loopback port with its own data directory (a fresh scratch one
 * unless `dataDir` is given, which survives stop() and a restart on it), durable like
 * MongoDB's default write concern. Small WiredTiger cache and log files: a test run starts several. Its log goes to `server.log` in the data
 * directory (not a pipe a busy parent could stall), shown on stderr only with `quiet: false`.
 */
export async function startSecantus(
  options: {
    binary?: string;
    quiet?: boolean;
    dataDir?: string;
    detached?: boolean;
    port?: number;
    /** Address to listen on (default 127.0.0.1). */ host?: string;
  } = {},
): Promise<TestServer> {
  const binary = options.binary ?? secantusBinary();
  const host = options.host ?? '127.0.0.1';
  if (!existsSync(binary)) throw new Error(`SecantusDB not found at ${binary}: run 'make tools' (or set MONGO_URL)`);
  const keep = options.dataDir !== undefined;
  const dir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'outbox-hub-secantus-')));
  const port = options.port ?? (await freePort());
  const logFile = join(dir, 'server.log');
  const log = openSync(logFile, 'a');
  const child = spawn(
    binary,
    [
      `--host=${host}`,
      `--port=${port}`,
      `--storage-path=${join(dir, 'data')}`,
      '--cache-size=256M',
      '--log-file-max=16MB',
      // Acknowledged means journaled, as with MongoDB's default write concern. Without it
      // SecantusDB 0.5.3 acknowledges before its log reaches the OS: a SIGKILL lost 53 of
      // 4,172 acknowledged inserts here (2,079 inserts/s from one writer without, 684 with).
      '--sync-on-commit',
      `--log-level=${options.quiet === false ? 'INFO' : 'WARNING'}`,
    ],
    { stdio: ['ignore', log, options.quiet === false ? 'inherit' : log], detached: options.detached ?? false, cwd: dir },
  );
  closeSync(log);
  const url = `mongodb://${host}:${port}/`;
  try {
    await waitForServer(url, child, 60_000, 'SecantusDB');
  } catch (err) {
    child.kill('SIGKILL');
    const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').trim().slice(-2000) : '';
    if (!keep) await rm(dir, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}\n${tail}`, { cause: err });
  }
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    url,
    backend: 'secantusdb',
    ...(child.pid === undefined ? {} : { pid: child.pid }),
    ...(keep ? {} : { dir }),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        // A paused server cannot act on SIGTERM.
        child.kill('SIGCONT');
        child.kill('SIGTERM');
        await Promise.race([exited, sleep(10_000)]);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
      if (!keep) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Starts one of the servers the harness runs itself. */
export function startEmbedded(
  backend: EmbeddedBackend,
  options: { quiet?: boolean; dataDir?: string; detached?: boolean; port?: number } = {},
): Promise<TestServer> {
  switch (backend) {
    case 'secantusdb':
      return startSecantus(options);
    case 'ferretdb':
      return startFerretDB(options);
    case 'mongo-java-server':
      // In memory: no data directory, and a restart starts empty.
      return startMongoJavaServer({
        ...(options.quiet === undefined ? {} : { quiet: options.quiet }),
        ...(options.port ? { port: options.port } : {}),
      });
  }
}

/**
 * The server a benchmark runs on: `BENCH_SERVER` (`secantusdb`, `ferretdb`,
 * `mongo-java-server`) when set, else the documented order of {@link startTestServer}.
 */
export function startBenchServer(): Promise<TestServer> {
  const wanted = process.env['BENCH_SERVER'];
  if (wanted === undefined || wanted === '') return startTestServer();
  const known: readonly EmbeddedBackend[] = ['secantusdb', 'ferretdb', 'mongo-java-server'];
  const backend = known.find((k) => k === wanted);
  if (!backend) throw new Error(`BENCH_SERVER must be one of ${known.join(', ')}, got ${JSON.stringify(wanted)}`);
  return startEmbedded(backend);
}

/** Chooses and starts a server in the documented order: MONGO_URL, Docker, SecantusDB. */
export async function startTestServer(): Promise<TestServer> {
  const envUrl = process.env['MONGO_URL'];
  if (envUrl) return { url: envUrl, backend: 'MONGO_URL', stop: () => Promise.resolve() };
  if (await dockerReachable()) {
    const { MongoDBContainer } = await import('@testcontainers/mongodb');
    const container = await new MongoDBContainer('mongo:8').start();
    const url = `${container.getConnectionString()}/?directConnection=true`;
    return { url, backend: 'testcontainers', stop: async () => void (await container.stop()) };
  }
  return startSecantus();
}

/** Directory of the Maven project that wraps mongo-java-server. */
export const MONGO_JAVA_SERVER_DIR = 'test/harness/mongo-java-server';

/**
 * Where the Makefile puts the mongo-java-server jar. Its name carries the same source hash the
 * Makefile computes (sha256 of pom.xml, then every file under src/ in byte order, first 12 hex
 * digits), so an edited server is never run from a stale jar.
 */
export function mongoJavaServerJar(root = process.cwd()): string {
  const fromEnv = process.env['MONGO_JAVA_SERVER_JAR'];
  if (fromEnv) return fromEnv;
  const dir = resolve(root, MONGO_JAVA_SERVER_DIR);
  const sources = readdirSync(join(dir, 'src'), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)).split(sep).join('/'))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const hash = createHash('sha256');
  for (const file of ['pom.xml', ...sources]) hash.update(readFileSync(join(dir, file)));
  return resolve(root, `.tools/lib/outbox-hub-mongo-java-server-${hash.digest('hex').slice(0, 12)}.jar`);
}

/** Why mongo-java-server cannot be started here (jar or java missing), or undefined when it can. */
export function mongoJavaServerMissing(jar = mongoJavaServerJar()): string | undefined {
  if (!existsSync(jar)) return `mongo-java-server jar not found at ${jar}: run 'make tools'`;
  const java = spawnSync('java', ['-version'], { stdio: 'ignore' });
  if (java.error || java.status !== 0) return `no working 'java' on PATH for mongo-java-server (${String(java.error ?? java.status)})`;
  return undefined;
}

/**
 * Starts mongo-java-server 1.47.0 (in-memory backend, oplog on) on a free loopback port and
 * waits for its ready line and a ping. Everything it stores dies with the process. Its log
 * (a stack trace for every error reply, duplicate keys included) goes to `server.log` in a
 * scratch directory that stop() and the global teardown delete: a file, not a pipe, so the
 * server never stalls on a pipe its parent is too busy to drain.
 */
export async function startMongoJavaServer(options: { jar?: string; quiet?: boolean; port?: number } = {}): Promise<TestServer> {
  const jar = options.jar ?? mongoJavaServerJar();
  const missing = mongoJavaServerMissing(jar);
  if (missing) throw new Error(missing);
  const dir = await mkdtemp(join(tmpdir(), 'outbox-hub-mongo-java-server-'));
  const logFile = join(dir, 'server.log');
  const log = openSync(logFile, 'a');
  const port = options.port ?? (await freePort());
  // Serial GC: one collector thread instead of one per core on a shared 2-core machine.
  const child = spawn('java', ['-XX:+UseSerialGC', '-Xmx512m', '-jar', jar, String(port)], {
    stdio: ['ignore', 'pipe', options.quiet === false ? 'inherit' : log],
  });
  closeSync(log);
  const url = `mongodb://127.0.0.1:${port}/`;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const logTail = (): string => (existsSync(logFile) ? readFileSync(logFile, 'utf8').trim().slice(-2000) : '');
  try {
    await new Promise<void>((ready, fail) => {
      let out = '';
      const timer = setTimeout(() => fail(new Error(`mongo-java-server printed no ready line within 60 s: ${logTail()}`)), 60_000);
      child.stdout?.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('mongo-java-server ready on ')) {
          clearTimeout(timer);
          ready();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        fail(new Error(`mongo-java-server exited with code ${code}: ${logTail()}`));
      });
    });
    await waitForServer(url, child, 30_000, 'mongo-java-server');
  } catch (err) {
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  // Nothing more comes on stdout after the ready line; keep it flowing all the same.
  child.stdout?.resume();
  return {
    url,
    backend: 'mongo-java-server',
    ...(child.pid === undefined ? {} : { pid: child.pid }),
    dir,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        child.kill('SIGTERM');
        await Promise.race([exited, sleep(5000)]);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
