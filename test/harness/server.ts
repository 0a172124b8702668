/**
 * Picks and runs the MongoDB-wire server for tests and `make dev`:
 * MONGO_URL if set; else MongoDB in Docker via @testcontainers/mongodb (single-node
 * replica set) when a Docker engine answers; else a local FerretDB (SQLite backend)
 * built by the Makefile into .tools/bin.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MongoClient } from 'mongodb';

/** Environment variable through which the global setup hands detected capabilities to test workers. */
export const CAPABILITIES_ENV = 'OUTBOX_HUB_TEST_CAPS';

/** Which server a run used. */
export type Backend = 'MONGO_URL' | 'testcontainers' | 'ferretdb';

/** A running test server. */
export interface TestServer {
  readonly url: string;
  readonly backend: Backend;
  /** Process id of a FerretDB we started (for teardown from another module). */
  readonly pid?: number;
  /** Scratch directory we created. */
  readonly dir?: string;
  stop(): Promise<void>;
}

/** Where the Makefile puts FerretDB. */
export function ferretdbBinary(root = process.cwd()): string {
  return process.env['FERRETDB_BIN'] ?? resolve(root, '.tools/bin/ferretdb');
}

/** A free loopback TCP port. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolvePort(addr.port) : reject(new Error('no port'))));
    });
  });
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

async function waitForServer(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`FerretDB exited with code ${child.exitCode}`);
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
  throw new Error(`FerretDB did not answer within ${timeoutMs} ms: ${String(lastErr)}`);
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
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
      if (!keep) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Chooses and starts a server in the documented order. */
export async function startTestServer(): Promise<TestServer> {
  const envUrl = process.env['MONGO_URL'];
  if (envUrl) return { url: envUrl, backend: 'MONGO_URL', stop: async () => undefined };
  if (await dockerReachable()) {
    const { MongoDBContainer } = await import('@testcontainers/mongodb');
    const container = await new MongoDBContainer('mongo:8').start();
    const url = `${container.getConnectionString()}/?directConnection=true`;
    return { url, backend: 'testcontainers', stop: async () => void (await container.stop()) };
  }
  return startFerretDB();
}
