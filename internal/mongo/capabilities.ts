import { setTimeout as sleep } from 'node:timers/promises';
import type { ChangeStream, Collection, Db, MongoClient } from 'mongodb';

/** What the connected server can do. */
export interface ServerCapabilities {
  /** Multi-document transactions (replica set or sharded cluster). */
  readonly transactions: boolean;
  /** `watch()` change streams on a collection. */
  readonly changeStreams: boolean;
  /** Change streams on a whole database (mongo-java-server accepts them but never delivers an event). */
  readonly databaseChangeStreams: boolean;
  /**
   * `mongodb`; or a server that speaks its wire protocol: `secantusdb` (WiredTiger, a
   * single-node replica set for tests), `ferretdb`, `mongo-java-server` (in memory, for tests).
   */
  readonly flavor: 'mongodb' | 'secantusdb' | 'ferretdb' | 'mongo-java-server';
  readonly version: string;
}

/** Probes the server for transactions and change streams by trying them. */
export async function detectCapabilities(client: MongoClient, db: Db): Promise<ServerCapabilities> {
  const info = await db.admin().command({ buildInfo: 1 });
  let flavor: ServerCapabilities['flavor'] = 'ferretdbVersion' in info || 'ferretdb' in info ? 'ferretdb' : 'mongodb';
  if ('secantusVersion' in info) flavor = 'secantusdb';
  // mongo-java-server's buildInfo is only version/versionArray/maxBsonObjectSize, where mongod
  // always sends gitVersion; its serverStatus names the process "java". Asked only without
  // gitVersion: serverStatus needs a privilege an application user on MongoDB may lack (a
  // refusal there just means "not mongo-java-server").
  if (flavor === 'mongodb' && !('gitVersion' in info)) {
    const status = await db
      .admin()
      .command({ serverStatus: 1 })
      // A refusal (no privilege) just means "not mongo-java-server".
      .catch(() => undefined);
    if (status?.['process'] === 'java') flavor = 'mongo-java-server';
  }
  const version = String(info['version'] ?? 'unknown');
  const probe = db.collection('_hub_capability_probe');

  let transactions = false;
  const session = client.startSession();
  try {
    session.startTransaction();
    await probe.insertOne({ probe: 'transaction' }, { session });
    await session.abortTransaction();
    transactions = true;
  } catch {
    // Refused: that is the answer (transactions stays false).
  } finally {
    await session.endSession().catch(() => undefined); // the probe's session: nothing to lose
  }

  const changeStreams = await deliversInsert(() => probe.watch([], { maxAwaitTimeMS: 50 }), probe);
  const databaseChangeStreams =
    changeStreams &&
    (await deliversInsert(() => db.watch([{ $match: { 'ns.coll': probe.collectionName } }], { maxAwaitTimeMS: 50 }), probe));
  return Object.freeze({ transactions, changeStreams, databaseChangeStreams, flavor, version });
}

/** True when a stream opened by `open` reports an insert into `probe` within a second. */
async function deliversInsert(open: () => ChangeStream, probe: Collection): Promise<boolean> {
  let stream: ChangeStream | undefined;
  try {
    stream = open();
    await stream.tryNext(); // opens the cursor before the insert
    await probe.insertOne({ probe: 'change stream' });
    for (let i = 0; i < 20; i++) {
      if (await stream.tryNext()) return true;
      await sleep(50);
    }
    return false;
  } catch {
    // Refused (no change streams on this server): the answer is no.
    return false;
  } finally {
    await stream?.close().catch(() => undefined); // a probe's stream: nothing to lose
  }
}
