import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detectCapabilities, type ServerCapabilities } from '../../internal/mongo/index.js';
import { MongoClient } from 'mongodb';
import {
  CAPABILITIES_ENV,
  SERVERS_ENV,
  mongoJavaServerMissing,
  startMongoJavaServer,
  startTestServer,
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

/**
 * Starts the run's primary server (MONGO_URL / useTestDb) and, beside it, mongo-java-server for
 * the suites that run on every wire server; records both for the workers and the teardown.
 */
export default async function globalSetup(): Promise<void> {
  const missing = mongoJavaServerMissing();
  const [first, other] = await Promise.allSettled([startTestServer(), missing ? undefined : startMongoJavaServer()]);
  if (first.status === 'rejected' || other.status === 'rejected') {
    // Do not leave the one that did start running behind a failed setup.
    if (first.status === 'fulfilled') await first.value.stop();
    if (other.status === 'fulfilled') await other.value?.stop();
    throw first.status === 'rejected' ? first.reason : (other as PromiseRejectedResult).reason;
  }
  const [primary, second] = [first.value, other.value];
  try {
    await record(primary, second, missing);
  } catch (err) {
    // A failed setup gets no teardown: stop what we started ourselves.
    await Promise.all([primary.stop(), second?.stop()]);
    throw err;
  }
}

async function record(primary: TestServer, second: TestServer | undefined, missing: string | undefined): Promise<void> {
  const started: StartedServer[] = [];
  const remember = (s: TestServer): void =>
    void started.push({ backend: s.backend, ...(s.pid ? { pid: s.pid } : {}), ...(s.dir ? { dir: s.dir } : {}) });
  remember(primary);
  if (second) remember(second);
  const stateFile = join(tmpdir(), `outbox-hub-test-server-${process.pid}.json`);
  writeFileSync(stateFile, JSON.stringify({ servers: started }));
  process.env['OUTBOX_HUB_TEST_STATE'] = stateFile;

  const caps = await probe(primary);
  process.env[CAPABILITIES_ENV] = JSON.stringify(caps);
  process.stderr.write(`\n${describeServer('primary', primary, caps)}`);
  process.env['MONGO_URL'] = primary.url;
  process.env['OUTBOX_HUB_TEST_BACKEND'] = primary.backend;

  const entries: TestServerEntry[] = [{ name: caps.flavor, primary: true, backend: primary.backend, url: primary.url, capabilities: caps }];
  if (second) {
    const secondCaps = await probe(second);
    process.stderr.write(describeServer('second', second, secondCaps));
    const name = secondCaps.flavor === caps.flavor ? `${secondCaps.flavor}#2` : secondCaps.flavor;
    entries.push({ name, primary: false, backend: second.backend, url: second.url, capabilities: secondCaps });
  } else {
    process.stderr.write(`[test harness] SECOND SERVER MISSING: ${missing}; suites for every server skip it\n`);
    entries.push({ name: 'mongo-java-server', primary: false, missing: missing ?? 'not started' });
  }
  process.env[SERVERS_ENV] = JSON.stringify(entries);
  // The Kubernetes API server starts only if a test file asks for it (kube-server.ts).
  prepareKubeRun();
}
