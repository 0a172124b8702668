import { Drainer } from './drainer.js';
import type { DrainerConfig } from './config.js';
import { createDrainerMetrics } from './metrics.js';
import { MongoEventLog } from '../eventlog/index.js';
import { openHubDb } from '../hubdb/index.js';
import { openLeaseStore } from '../lease/index.js';
import type { Service } from '../lifecycle/index.js';
import type { Logger } from '../log/index.js';
import { connectMongo, type MongoClient } from '../mongo/index.js';
import { MongoOutboxStore } from '../outbox/index.js';
import { startTelemetryServer, type Registry, type TelemetryServer } from '../telemetry/index.js';

/**
 * The drainer process: telemetry server, MongoDB connection, start-up
 * migrations and the {@link Drainer}. Stops in reverse order and closes only
 * what it opened.
 */
export class DrainerApp implements Service {
  readonly #config: DrainerConfig;
  readonly #log: Logger;
  readonly #registry: Registry;
  readonly #abort = new AbortController();
  #telemetry: TelemetryServer | undefined;
  #client: MongoClient | undefined;
  #leaseClient: MongoClient | undefined;
  #drainer: Drainer | undefined;

  constructor(config: DrainerConfig, deps: { log: Logger; registry: Registry }) {
    this.#config = config;
    this.#log = deps.log;
    this.#registry = deps.registry;
  }

  async start(): Promise<void> {
    const cfg = this.#config;
    this.#telemetry = await startTelemetryServer({
      host: cfg.metricsHost,
      port: cfg.metricsPort,
      registry: this.#registry,
      ready: () => this.#drainer?.ready ?? false,
    });
    this.#log.info('telemetry listening', { port: this.#telemetry.port });
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
    this.#leaseClient = await connectMongo(cfg.mongoUrl, { appName: 'outbox-hub-drainer-leases', signal: this.#abort.signal, maxPoolSize: 4 });
    const leaseDb = this.#leaseClient.db(cfg.mongoDb);
    this.#drainer = new Drainer({
      outbox: new MongoOutboxStore(db, { changeStreams: caps.changeStreams, partitions: cfg.partitions }),
      eventLog: new MongoEventLog(db),
      leases: await openLeaseStore({ backend: cfg.leaseBackend, db: leaseDb, namespace: cfg.leaseNamespace, prefix: cfg.leasePrefix }),
      log: this.#log,
      metrics: createDrainerMetrics(this.#registry),
      config: cfg,
    });
    await this.#drainer.start();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#drainer?.stop();
    await this.#telemetry?.close();
    await this.#leaseClient?.close();
    await this.#client?.close();
  }
}
