import { Drainer } from './drainer.js';
import type { DrainerConfig } from './config.js';
import { createDrainerMetrics } from './metrics.js';
import { MongoEventLog } from '../eventlog/index.js';
import { Health, startDbProbe } from '../health/index.js';
import { openHubDb } from '../hubdb/index.js';
import { openLeaseStore } from '../lease/index.js';
import type { Service } from '../lifecycle/index.js';
import type { Logger } from '../log/index.js';
import { connectMongo, type MongoClient } from '../mongo/index.js';
import { MongoOutboxStore } from '../outbox/index.js';
import { startTelemetryServer, type Registry, type TelemetryServer } from '../telemetry/index.js';

/**
 * The drainer process: telemetry server first (so /healthz and /readyz answer
 * while the database is still unreachable), then the MongoDB connection (waited
 * for as long as it takes), start-up migrations, a database probe and the
 * {@link Drainer}. Stops in reverse order and closes only what it opened.
 */
export class DrainerApp implements Service {
  readonly #config: DrainerConfig;
  readonly #log: Logger;
  readonly #registry: Registry;
  readonly #health: Health;
  readonly #abort = new AbortController();
  #telemetry: TelemetryServer | undefined;
  #client: MongoClient | undefined;
  #leaseClient: MongoClient | undefined;
  #stopProbe: (() => Promise<void>) | undefined;
  #drainer: Drainer | undefined;

  constructor(config: DrainerConfig, deps: { log: Logger; registry: Registry; onWedged?: (reasons: string[]) => void }) {
    this.#config = config;
    this.#log = deps.log;
    this.#registry = deps.registry;
    this.#health = new Health({
      log: deps.log,
      registry: deps.registry,
      exitAfterMs: config.wedgeExitMs,
      ...(deps.onWedged ? { onWedged: deps.onWedged } : {}),
    });
  }

  /** Readiness and liveness as `/readyz` and `/healthz` report them. */
  get health(): Health {
    return this.#health;
  }

  async start(): Promise<void> {
    const cfg = this.#config;
    const starting = this.#health.condition('start-up', { ok: false, reason: 'connecting to the database' });
    this.#telemetry = await startTelemetryServer({
      host: cfg.metricsHost,
      port: cfg.metricsPort,
      registry: this.#registry,
      health: this.#health,
    });
    this.#log.info('telemetry listening', { port: this.#telemetry.port });
    this.#health.start();
    const { client, db, caps } = await openHubDb({
      url: cfg.mongoUrl,
      dbName: cfg.mongoDb,
      appName: 'outbox-hub-drainer',
      log: this.#log,
      partitions: cfg.partitions,
      signal: this.#abort.signal,
    });
    this.#client = client;
    // Leases get their own connection pool: a renewal never queues behind drain queries.
    this.#leaseClient = await connectMongo(cfg.mongoUrl, {
      appName: 'outbox-hub-drainer-leases',
      signal: this.#abort.signal,
      maxPoolSize: 4,
      retry: { onRetry: (err) => this.#log.warn('database unreachable; retrying', { err }) },
    });
    const leaseDb = this.#leaseClient.db(cfg.mongoDb);
    this.#stopProbe = startDbProbe({ db, health: this.#health, log: this.#log });
    this.#drainer = new Drainer({
      outbox: new MongoOutboxStore(db, {
        changeStreams: caps.databaseChangeStreams ? 'database' : caps.changeStreams ? 'collections' : false,
        partitions: cfg.partitions,
      }),
      eventLog: new MongoEventLog(db),
      leases: await openLeaseStore({ backend: cfg.leaseBackend, db: leaseDb, namespace: cfg.leaseNamespace, prefix: cfg.leasePrefix }),
      log: this.#log,
      metrics: createDrainerMetrics(this.#registry),
      config: cfg,
      health: this.#health,
    });
    await this.#drainer.start();
    starting.dispose();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#drainer?.stop();
    await this.#stopProbe?.();
    this.#health.stop();
    await this.#telemetry?.close();
    await this.#leaseClient?.close();
    await this.#client?.close();
  }
}
