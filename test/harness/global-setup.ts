import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detectCapabilities } from '../../internal/mongo/index.js';
import { MongoClient } from 'mongodb';
import { CAPABILITIES_ENV, startTestServer } from './server.js';
import { prepareKubeRun } from './kube-server.js';

/** Starts the one server of this test run and records it for the workers and the teardown. */
export default async function globalSetup(): Promise<void> {
  const server = await startTestServer();
  const client = new MongoClient(server.url);
  try {
    const caps = await detectCapabilities(client, client.db('outbox_hub_probe'));
    process.env[CAPABILITIES_ENV] = JSON.stringify(caps);
    process.stderr.write(
      `\n[test harness] backend: ${server.backend} (${caps.flavor} ${caps.version}) at ${server.url}; transactions: ${caps.transactions}, change streams: ${caps.changeStreams}\n`,
    );
  } finally {
    await client.close();
  }
  process.env['MONGO_URL'] = server.url;
  process.env['OUTBOX_HUB_TEST_BACKEND'] = server.backend;
  const stateFile = join(tmpdir(), `outbox-hub-test-server-${process.pid}.json`);
  writeFileSync(stateFile, JSON.stringify({ backend: server.backend, pid: server.pid, dir: server.dir }));
  process.env['OUTBOX_HUB_TEST_STATE'] = stateFile;
  // The Kubernetes API server starts only if a test file asks for it (kube-server.ts).
  prepareKubeRun();
}
