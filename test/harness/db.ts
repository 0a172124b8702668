/** One database per test file on the run's shared server (or, with {@link useTestDbAt}, on any server of the run). */
import { randomBytes } from 'node:crypto';
import { MongoClient, type Db } from 'mongodb';

/** The run's server URL (set by the global setup). */
export function testUrl(): string {
  const url = process.env['MONGO_URL'];
  if (!url) throw new Error('MONGO_URL is not set: run tests through jest (globalSetup) or make test');
  return url;
}

/** A fresh database name for one test file. */
export function freshDbName(label: string): string {
  return `t_${label.replace(/[^A-Za-z0-9]/g, '_').slice(0, 30)}_${randomBytes(4).toString('hex')}`;
}

/** Test-file database handle; fields are valid between beforeAll and afterAll. */
export interface TestDb {
  readonly client: MongoClient;
  readonly db: Db;
  readonly name: string;
  readonly url: string;
}

/** Registers beforeAll/afterAll that create and drop a database for this file on the primary server. */
export function useTestDb(label: string): TestDb {
  return useTestDbAt(testUrl(), label);
}

/** Like {@link useTestDb}, on the server at `url` (see servers.ts for the run's servers). */
export function useTestDbAt(url: string, label: string): TestDb {
  const handle: { client?: MongoClient; db?: Db; name: string } = { name: freshDbName(label) };
  beforeAll(async () => {
    handle.client = new MongoClient(url);
    await handle.client.connect();
    handle.db = handle.client.db(handle.name);
  });
  afterAll(async () => {
    await handle.db?.dropDatabase().catch(() => undefined);
    await handle.client?.close();
  });
  return {
    get client() {
      if (!handle.client) throw new Error('useTestDb: used outside a test');
      return handle.client;
    },
    get db() {
      if (!handle.db) throw new Error('useTestDb: used outside a test');
      return handle.db;
    },
    name: handle.name,
    url,
  };
}
