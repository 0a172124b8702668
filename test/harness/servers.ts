/**
 * Every MongoDB-wire server of the run: the primary one (MONGO_URL, what useTestDb gives) and
 * mongo-java-server beside it, as the global setup recorded them. Suites whose guarantees must
 * hold on any wire server register through {@link describeEachServer}; a server that could not
 * start has its suites skipped with a stderr line naming what is missing, never passed.
 */
import type { ServerCapabilities } from '../../internal/mongo/index.js';
import { useTestDbAt, type TestDb } from './db.js';
import { SERVERS_ENV, type TestServerEntry } from './server.js';

/** One server of the run as a suite sees it. */
export interface WireServer {
  /** The server's flavor (`ferretdb`, `mongodb`, `mongo-java-server`): used in test titles. */
  readonly name: string;
  /** The server MONGO_URL / useTestDb point at. */
  readonly primary: boolean;
  /** False when the server could not be started; `missing` says why. */
  readonly available: boolean;
  readonly missing?: string;
  readonly url: string;
  readonly capabilities: ServerCapabilities;
}

/** Where a missing server's (skipped, never run) suites would have connected. */
const UNAVAILABLE_URL = 'mongodb://unavailable.invalid/';

/** The run's servers, primary first. */
export function testServers(env: NodeJS.ProcessEnv = process.env): WireServer[] {
  const raw = env[SERVERS_ENV];
  if (!raw) throw new Error(`${SERVERS_ENV} is not set: run tests through jest (globalSetup) or 'make test'`);
  return (JSON.parse(raw) as TestServerEntry[]).map((e) =>
    'missing' in e
      ? {
          name: e.name,
          primary: false,
          available: false,
          missing: e.missing,
          url: UNAVAILABLE_URL,
          capabilities: {
            transactions: false,
            changeStreams: false,
            databaseChangeStreams: false,
            flavor: 'mongodb',
            version: 'unavailable',
          },
        }
      : { name: e.name, primary: e.primary, available: true, url: e.url, capabilities: e.capabilities },
  );
}

/**
 * Registers `body` once per server, in a describe titled `title [server]`. For a server that
 * could not start, the same tests are registered skipped and the skip is announced on stderr.
 */
export function describeEachServer(title: string, body: (server: WireServer) => void): void {
  for (const server of testServers()) {
    const name = `${title} [${server.name}]`;
    if (server.available) {
      describe(name, () => body(server));
    } else {
      process.stderr.write(`\n  SKIPPED (${server.missing}): ${name}\n`);
      describe.skip(name, () => body(server));
    }
  }
}

/** {@link useTestDb} on `server`: a fresh database for this file, dropped afterwards. */
export function useServerDb(server: WireServer, label: string): TestDb {
  return useTestDbAt(server.url, label);
}
