import { createJoseVerifier } from '../auth/index.js';
import { MongoEventLog } from '../eventlog/index.js';
import { MongoGroupStore, migrateGroups } from '../groupstore/index.js';
import { openHubDb } from '../hubdb/index.js';
import { openLeaseStore } from '../lease/index.js';
import { describeError } from '../errors/index.js';
import { repeat, type Service } from '../lifecycle/index.js';
import type { Logger } from '../log/index.js';
import type { MongoClient } from '../mongo/index.js';
import { MongoOutboxStore, createOutbox } from '../outbox/index.js';
import { startTelemetryServer, type Registry, type TelemetryServer } from '../telemetry/index.js';
import type { GatewayConfig } from './config.js';
import { GroupManager } from './groups.js';
import { LiveHub } from './hub.js';
import { createGatewayMetrics } from './metrics.js';
import { GatewayServer } from './server.js';
import { LogTail } from './tail.js';

/** Membership group in which gateways announce themselves (no partitions). */
export const GATEWAY_PRESENCE_GROUP = 'gateway';

/**
 * The gateway process: telemetry, MongoDB, migrations, the log tail, consumer
 * groups and the WebSocket server. Stop order: refuse and close clients,
 * release group leases after flushing cursors, stop the tail, close the rest.
 */
export class GatewayApp implements Service {
  readonly #config: GatewayConfig;
  readonly #log: Logger;
  readonly #registry: Registry;
  readonly #abort = new AbortController();
  #telemetry: TelemetryServer | undefined;
  #client: MongoClient | undefined;
  #tail: LogTail | undefined;
  #hub: LiveHub | undefined;
  #groups: GroupManager | undefined;
  #server: GatewayServer | undefined;
  #ready = false;
  #presence: Promise<void> | undefined;
  #leaveGroup: (() => Promise<void>) | undefined;

  constructor(config: GatewayConfig, deps: { log: Logger; registry: Registry }) {
    this.#config = config;
    this.#log = deps.log;
    this.#registry = deps.registry;
  }

  /** The WebSocket port (useful when configured as 0). */
  get port(): number {
    return this.#server?.port ?? 0;
  }

  /** The telemetry port (`/metrics`, `/healthz`, `/readyz`). */
  get telemetryPort(): number {
    return this.#telemetry?.port ?? 0;
  }

  async start(): Promise<void> {
    const cfg = this.#config;
    this.#telemetry = await startTelemetryServer({
      host: cfg.metricsHost,
      port: cfg.metricsPort,
      registry: this.#registry,
      ready: () => this.#ready,
    });
    this.#log.info('telemetry listening', { port: this.#telemetry.port });
    const verifier = await createJoseVerifier({
      algorithms: cfg.jwt.algorithms,
      keys: cfg.jwt.keys,
      clockToleranceS: cfg.jwt.clockToleranceS,
      ...(cfg.jwt.issuer === undefined ? {} : { issuer: cfg.jwt.issuer }),
      ...(cfg.jwt.audience === undefined ? {} : { audience: cfg.jwt.audience }),
    });
    const { client, db, caps } = await openHubDb({
      url: cfg.mongoUrl,
      dbName: cfg.mongoDb,
      appName: 'outbox-hub-gateway',
      log: this.#log,
      partitions: cfg.partitions,
      signal: this.#abort.signal,
    });
    this.#client = client;
    await migrateGroups(db);
    const metrics = createGatewayMetrics(this.#registry);
    const eventLog = new MongoEventLog(db);
    this.#tail = new LogTail({
      eventLog,
      partitions: cfg.partitions,
      pollMinMs: cfg.pollMinMs,
      pollMaxMs: cfg.pollMaxMs,
      log: this.#log,
      stallAfterMs: cfg.logStallAfterMs,
      reporter: cfg.instance,
      metrics: { stalled: metrics.logStalledPartitions, missingSeq: metrics.logMissingSeq },
      watch: caps.changeStreams,
    });
    await this.#tail.start();
    this.#hub = new LiveHub(this.#tail);
    const leases = await openLeaseStore({ backend: cfg.leaseBackend, db, namespace: cfg.leaseNamespace, prefix: cfg.leasePrefix });
    this.#groups = new GroupManager({
      eventLog,
      leases,
      store: new MongoGroupStore(db),
      tail: this.#tail,
      log: this.#log,
      metrics,
      settings: {
        partitions: cfg.partitions,
        instance: cfg.instance,
        ackTimeoutMs: cfg.ackTimeoutMs,
        maxDeliveries: cfg.maxDeliveries,
        redeliveryBaseMs: cfg.redeliveryBaseMs,
        leaseTtlMs: cfg.leaseTtlMs,
        leaseRenewMs: cfg.leaseRenewMs,
        cursorFlushMs: cfg.cursorFlushMs,
      },
    });
    this.#server = new GatewayServer({
      config: cfg,
      verifier,
      outbox: createOutbox(db, { partitions: cfg.partitions, maxPayloadBytes: cfg.maxPayloadBytes }),
      outboxStore: new MongoOutboxStore(db, { partitions: cfg.partitions }),
      eventLog,
      tail: this.#tail,
      hub: this.#hub,
      groups: this.#groups,
      metrics,
      log: this.#log,
    });
    await this.#server.start();
    // Presence for operators: ops lists the gateways seen alive.
    const beat = () => leases.heartbeat(GATEWAY_PRESENCE_GROUP, cfg.instance, cfg.leaseTtlMs);
    await beat();
    this.#presence = repeat(cfg.leaseRenewMs, this.#abort.signal, beat, (err) =>
      this.#log.warn('presence heartbeat failed', { err: describeError(err) }),
    );
    this.#leaveGroup = () => leases.leave(GATEWAY_PRESENCE_GROUP, cfg.instance);
    this.#ready = true;
  }

  async stop(): Promise<void> {
    this.#ready = false;
    this.#abort.abort();
    await this.#server?.stop();
    await this.#presence;
    await this.#leaveGroup?.().catch(() => undefined);
    await this.#groups?.stop();
    this.#hub?.close();
    await this.#tail?.stop();
    await this.#telemetry?.close();
    await this.#client?.close();
  }
}
