/**
 * The hub's database as every binary opens it: connect, probe what the server
 * can do, and run the idempotent start-up migrations of the shared collections
 * (outbox, event log, leases). Binaries migrate their own extra collections.
 *
 * Lifecycle: the caller owns the returned client and closes it.
 */
import { migrateEventLog } from '../eventlog/index.js';
import { migrateLeases } from '../lease/index.js';
import type { Logger } from '../log/index.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectMongo, detectCapabilities, isTransientError, type Db, type MongoClient, type ServerCapabilities } from '../mongo/index.js';
import { migrateOutbox } from '../outbox/index.js';

/** An open, migrated hub database. */
export interface HubDb {
  readonly client: MongoClient;
  readonly db: Db;
  readonly caps: ServerCapabilities;
}

/** Connects to `url`, probes capabilities, migrates the shared collections of `dbName`. */
export async function openHubDb(options: {
  url: string;
  dbName: string;
  appName: string;
  log: Logger;
  /** Outbox partition count P (one collection per partition is migrated). */
  partitions: number;
  signal?: AbortSignal;
}): Promise<HubDb> {
  const { log } = options;
  for (let attempt = 1; ; attempt++) {
    // Waits for an unreachable database as long as it takes (the binary reports not ready meanwhile).
    const client = await connectMongo(options.url, {
      appName: options.appName,
      ...(options.signal ? { signal: options.signal } : {}),
      retry: { onRetry: (err, n) => log.warn('database unreachable; retrying', { err, attempt: n }) },
    });
    try {
      const db = client.db(options.dbName);
      const caps = await detectCapabilities(client, db);
      log.info('connected', { db: options.dbName, ...caps });
      await migrateOutbox(db, { partitions: options.partitions });
      await migrateEventLog(db);
      await migrateLeases(db);
      return { client, db, caps };
    } catch (err) {
      await client.close().catch(() => undefined); // the connection is being replaced anyway
      if (!isTransientError(err) || options.signal?.aborted) throw err;
      log.warn('database went away during start-up; retrying', { err, attempt });
      await sleep(Math.min(5_000, 250 * 2 ** Math.min(attempt, 5)), undefined, { signal: options.signal });
    }
  }
}
