import { MongoEventLog, migrateEventLog, type EventLog } from '../eventlog/index.js';
import { MongoGroupStore, migrateGroups, type GroupStore } from '../groupstore/index.js';
import { migrateLeases, openLeaseStore, type LeaseStore } from '../lease/index.js';
import type { Logger } from '../log/index.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectMongo, detectCapabilities, isTransientError, type Db, type MongoClient, type ServerCapabilities } from '../mongo/index.js';
import { MongoOutboxStore, createOutbox, migrateOutbox, type Outbox, type OutboxStore } from '../outbox/index.js';
import type { HubSettings } from './settings.js';

/** The hub's ports over one database, as every binary gets them. */
export interface HubPorts {
  /** The connection, for application-side sessions (the demo writes its orders in transactions). */
  readonly client: MongoClient;
  readonly db: Db;
  readonly caps: ServerCapabilities;
  /** The drainer's port onto the outbox (woken by change streams where the server has them). */
  readonly outboxStore: OutboxStore;
  readonly eventLog: EventLog;
  readonly groupStore: GroupStore;
  /** The configured lease backend (MongoDB or Kubernetes), on its own connection pool for MongoDB. */
  readonly leases: LeaseStore;
  /** The application-side writer (for the gateway's PUBLISH and the demo). */
  outbox(options?: { maxPayloadBytes?: number }): Outbox;
  /** Closes what was opened for these ports. Idempotent. */
  close(): Promise<void>;
}

/** Options for {@link openHubPorts}. */
export interface OpenPortsOptions {
  appName: string;
  log: Logger;
  signal?: AbortSignal;
  /** Kubernetes client configuration for the Kubernetes lease backend (tests); default: in-cluster or KUBECONFIG. */
  kubeConfig?: import('@kubernetes/client-node').KubeConfig;
}

/**
 * The composition root's one place that chooses adapters: connects (waiting for
 * an unreachable database as long as it takes), probes what the server can do,
 * runs the idempotent start-up migrations of every collection, and builds the
 * ports from `settings`. Leases on MongoDB get their own connection pool, so a
 * renewal never queues behind drain or read queries.
 */
export async function openHubPorts(settings: HubSettings, options: OpenPortsOptions): Promise<HubPorts> {
  const { client, db, caps } = await connectAndMigrate(settings, options);
  let leaseClient: MongoClient | undefined;
  try {
    let leaseDb = db;
    if (settings.leaseBackend === 'mongodb') {
      leaseClient = await connectMongo(settings.mongoUrl, {
        appName: `${options.appName}-leases`,
        maxPoolSize: 4,
        ...(options.signal ? { signal: options.signal } : {}),
        retry: { onRetry: (err) => options.log.warn('database unreachable; retrying', { err }) },
      });
      leaseDb = leaseClient.db(settings.mongoDb);
    }
    const leases = await openLeaseStore({
      backend: settings.leaseBackend,
      db: leaseDb,
      namespace: settings.leaseNamespace,
      prefix: settings.leasePrefix,
      ...(options.kubeConfig ? { kubeConfig: options.kubeConfig } : {}),
    });
    let closing: Promise<void> | undefined;
    return {
      client,
      db,
      caps,
      outboxStore: new MongoOutboxStore(db, {
        changeStreams: caps.databaseChangeStreams ? 'database' : caps.changeStreams ? 'collections' : false,
        partitions: settings.partitions,
      }),
      eventLog: new MongoEventLog(db),
      groupStore: new MongoGroupStore(db),
      leases,
      outbox: (o = {}) => createOutbox(db, { partitions: settings.partitions, ...o }),
      close() {
        closing ??= (async () => {
          await leaseClient?.close();
          await client.close();
        })();
        return closing;
      },
    };
  } catch (err) {
    // Start-up failed half-way: what was opened is closed, and the failure is the caller's to report.
    await leaseClient?.close().catch(() => undefined);
    await client.close().catch(() => undefined);
    throw err;
  }
}

/** Connects to the database of `settings`, probes it and migrates every collection of the hub. */
async function connectAndMigrate(
  settings: HubSettings,
  options: OpenPortsOptions,
): Promise<{ client: MongoClient; db: Db; caps: ServerCapabilities }> {
  const { log, signal } = options;
  for (let attempt = 1; ; attempt++) {
    // Waits for an unreachable database as long as it takes (the binary reports not ready meanwhile).
    const client = await connectMongo(settings.mongoUrl, {
      appName: options.appName,
      ...(signal ? { signal } : {}),
      retry: { onRetry: (err, n) => log.warn('database unreachable; retrying', { err, attempt: n }) },
    });
    try {
      const db = client.db(settings.mongoDb);
      const caps = await detectCapabilities(client, db);
      log.info('connected', { db: settings.mongoDb, ...caps });
      await migrateOutbox(db, { partitions: settings.partitions });
      await migrateEventLog(db);
      await migrateLeases(db);
      await migrateGroups(db);
      return { client, db, caps };
    } catch (err) {
      await client.close().catch(() => undefined); // the connection is being replaced anyway
      if (!isTransientError(err) || signal?.aborted) throw err;
      log.warn('database went away during start-up; retrying', { err, attempt });
      await sleep(Math.min(5_000, 250 * 2 ** Math.min(attempt, 5)), undefined, { signal });
    }
  }
}
