import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detectCapabilities, type ServerCapabilities } from '../../internal/mongo/index.js';
import { MongoClient } from 'mongodb';
import {
  CAPABILITIES_ENV,
  SERVERS_ENV,
  mongoJavaServerMissing,
  startEmbedded,
  startTestServer,
  type EmbeddedBackend,
  type TestServer,
  type TestServerEntry,
} from './server.js';
import { prepareKubeRun } from './kube-server.js';

/** What the teardown needs to stop a server we started (it runs in another module instance). */
export interface StartedServer {
  backend: string;
  pid?: number;
  dir?: string;
}

/**
 * The servers of the matrix beside the primary one, each adding cases the others cannot
 * show: FerretDB 1.24 (no transactions or change streams, ordered inserts in chunks of 100,
 * read-then-write findAndModify, no index use) and mongo-java-server (in memory; change
 * streams whose update events lack updateDescription).
 */
const MATRIX: readonly EmbeddedBackend[] = ['ferretdb', 'mongo-java-server'];

async function probe(server: TestServer): Promise<ServerCapabilities> {
  const client = new MongoClient(server.url);
  try {
    return await detectCapabilities(client, client.db('outbox_hub_probe'));
  } finally {
    await client.close();
  }
}

function describeServer(role: string, server: TestServer, caps: ServerCapabilities): string {
  return `[test harness] ${role}: ${server.backend} (${caps.flavor} ${caps.version}) at ${server.url}; transactions: ${caps.transactions}, change streams: ${caps.changeStreams} (database-wide: ${caps.databaseChangeStreams})\n`;
}

/** Why a matrix server cannot start here, or undefined when it can. */
function missing(backend: EmbeddedBackend): string | undefined {
  return backend === 'mongo-java-server' ? mongoJavaServerMissing() : undefined;
}

/**
 * Starts the run's primary server (MONGO_URL / useTestDb: SecantusDB unless told otherwise)
 * and the rest of the matrix beside it for the suites that run on every wire server; records
 * them for the workers and the teardown. The primary must start; so must every matrix server
 * whose tool is present (a missing jar or JVM is reported, and its suites skip loudly).
 */
export default async function globalSetup(): Promise<void> {
  const gaps = MATRIX.map(missing);
  const results = await Promise.allSettled([
    startTestServer(),
    ...MATRIX.map((b, i) => (gaps[i] ? Promise.resolve(undefined) : startEmbedded(b))),
  ]);
  const started = results.flatMap((r) => (r.status === 'fulfilled' && r.value ? [r.value] : []));
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) {
    // Do not leave the ones that did start running behind a failed setup.
    await Promise.all(started.map((s) => s.stop()));
    throw failed.reason;
  }
  const [primary, ...others] = results.map((r) => (r as PromiseFulfilledResult<TestServer | undefined>).value);
  try {
    await record(primary as TestServer, others, gaps);
  } catch (err) {
    // A failed setup gets no teardown: stop what we started ourselves.
    await Promise.all(started.map((s) => s.stop()));
    throw err;
  }
}

/**
 * Kills the servers and removes their directories when jest dies without its teardown
 * (SIGKILL, an OOM): otherwise every interrupted run leaves three database servers behind.
 * Exits once the teardown has removed the state file.
 */
const WATCHDOG = `
const fs = require('fs');
const [parent, stateFile, ...rest] = process.argv.slice(1);
const servers = JSON.parse(rest[0]);
const alive = (p) => { try { process.kill(Number(p), 0); return true; } catch { return false; } };
setInterval(() => {
  if (!fs.existsSync(stateFile)) process.exit(0);
  if (alive(parent)) return;
  for (const s of servers) { try { process.kill(s.pid, 'SIGKILL'); } catch {} }
  for (const s of servers) if (s.dir) fs.rmSync(s.dir, { recursive: true, force: true });
  fs.rmSync(stateFile, { force: true });
  process.exit(0);
}, 1000);
`;

function watchServers(servers: readonly StartedServer[], stateFile: string): void {
  const ours = servers.filter((s) => s.pid !== undefined);
  if (ours.length === 0) return;
  spawn(process.execPath, ['-e', WATCHDOG, String(process.pid), stateFile, JSON.stringify(ours)], {
    detached: true,
    stdio: 'ignore',
  }).unref();
}

async function record(primary: TestServer, others: Array<TestServer | undefined>, gaps: Array<string | undefined>): Promise<void> {
  const started: StartedServer[] = [primary, ...others].flatMap((s) =>
    s ? [{ backend: s.backend, ...(s.pid ? { pid: s.pid } : {}), ...(s.dir ? { dir: s.dir } : {}) }] : [],
  );
  const stateFile = join(tmpdir(), `outbox-hub-test-server-${process.pid}.json`);
  writeFileSync(stateFile, JSON.stringify({ servers: started }));
  process.env['OUTBOX_HUB_TEST_STATE'] = stateFile;
  watchServers(started, stateFile);

  const caps = await probe(primary);
  process.env[CAPABILITIES_ENV] = JSON.stringify(caps);
  process.stderr.write(`\n${describeServer('primary', primary, caps)}`);
  process.env['MONGO_URL'] = primary.url;
  process.env['OUTBOX_HUB_TEST_BACKEND'] = primary.backend;

  const entries: TestServerEntry[] = [{ name: caps.flavor, primary: true, backend: primary.backend, url: primary.url, capabilities: caps }];
  const names = new Set<string>([caps.flavor]);
  for (const [i, server] of others.entries()) {
    const backend = MATRIX[i] as EmbeddedBackend;
    if (!server) {
      process.stderr.write(`[test harness] MATRIX SERVER MISSING: ${backend}: ${gaps[i]}; suites for every server skip it\n`);
      entries.push({ name: backend, primary: false, missing: gaps[i] ?? 'not started' });
      continue;
    }
    const c = await probe(server);
    process.stderr.write(describeServer('matrix', server, c));
    const name = names.has(c.flavor) ? `${c.flavor}#${i + 2}` : c.flavor;
    names.add(name);
    entries.push({ name, primary: false, backend: server.backend, url: server.url, capabilities: c });
  }
  process.env[SERVERS_ENV] = JSON.stringify(entries);
  // The Kubernetes API server starts only if a test file asks for it (kube-server.ts).
  prepareKubeRun();
}
