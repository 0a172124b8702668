import { createJoseVerifier } from '../auth/index.js';
import { MongoEventLog } from '../eventlog/index.js';
import { MongoGroupStore, migrateGroups } from '../groupstore/index.js';
import { Health, startDbProbe } from '../health/index.js';
import { openHubDb } from '../hubdb/index.js';
import { openLeaseStore } from '../lease/index.js';
import { repeat, type Service } from '../lifecycle/index.js';
import type { Logger } from '../log/index.js';
import type { MongoClient } from '../mongo/index.js';
import { createOutbox } from '../outbox/index.js';
import { startTelemetryServer, type Registry, type TelemetryServer } from '../telemetry/index.js';
import type { GatewayConfig } from './config.js';
import { GroupManager } from './groups.js';
import { LiveHub } from './hub.js';
import { createGatewayMetrics } from './metrics.js';
import { GatewayServer } from './server.js';
import { LogTail } from './tail.js';

/** A loop silent this long is wedged (its rounds are bounded by socket timeouts far shorter). */
const LOOP_SILENCE_MS = 120_000;

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
  readonly #health: Health;
  #presence: Promise<void> | undefined;
  #leaveGroup: (() => Promise<void>) | undefined;
  #stopProbe: (() => Promise<void>) | undefined;
  #tailCheck: Promise<void> | undefined;

  constructor(config: GatewayConfig, deps: { log: Logger; registry: Registry; onWedged?: (reasons: string[]) => void }) {
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
    const starting = this.#health.condition('start-up', { ok: false, reason: 'connecting to the database' });
    this.#telemetry = await startTelemetryServer({
      host: cfg.metricsHost,
      port: cfg.metricsPort,
      registry: this.#registry,
      health: this.#health,
    });
    this.#log.info('telemetry listening', { port: this.#telemetry.port });
    this.#health.start();
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
    this.#stopProbe = startDbProbe({ db, health: this.#health, log: this.#log });
    const metrics = createGatewayMetrics(this.#registry);
    const eventLog = new MongoEventLog(db);
    const tailDog = this.#health.watchdog('log tail', LOOP_SILENCE_MS);
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
      onRound: (ok) => {
        tailDog.beat();
        if (!ok) this.#health.dbError('log tail');
      },
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
      health: this.#health,
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
      eventLog,
      tail: this.#tail,
      hub: this.#hub,
      groups: this.#groups,
      metrics,
      log: this.#log,
      database: { up: () => this.#health.isOk('database'), onDown: (listener) => this.#health.onFail('database', listener) },
    });
    await this.#server.start();
    // Presence for operators: ops lists the gateways seen alive.
    const presenceDog = this.#health.watchdog('presence heartbeat', LOOP_SILENCE_MS);
    const beat = async (): Promise<void> => {
      presenceDog.beat();
      await leases.heartbeat(GATEWAY_PRESENCE_GROUP, cfg.instance, cfg.leaseTtlMs);
    };
    await beat().catch((err: unknown) => this.#log.warn('presence heartbeat failed', { err }));
    this.#presence = repeat(cfg.leaseRenewMs, this.#abort.signal, beat, (err) => {
      this.#health.dbError('presence');
      this.#log.warn('presence heartbeat failed', { err });
    });
    this.#leaveGroup = () => leases.leave(GATEWAY_PRESENCE_GROUP, cfg.instance);
    // Readiness: the tail must keep reading (a tail that cannot read serves no subscriber).
    const tail = this.#tail;
    const tailReading = this.#health.condition('log tail', { ok: true });
    const bound = Math.max(10_000, 5 * cfg.pollMaxMs);
    this.#tailCheck = repeat(
      1_000,
      this.#abort.signal,
      async () => {
        const silent = Date.now() - tail.lastReadAt;
        tailReading.set(silent <= bound, `no successful read of the log for ${Math.round(silent / 1000)} s`);
        return Promise.resolve();
      },
      () => undefined,
    );
    starting.dispose();
  }

  async stop(): Promise<void> {
    this.#health.condition('stopping', { ok: false, reason: 'stopping' });
    this.#abort.abort();
    await this.#tailCheck;
    await this.#server?.stop();
    await this.#presence;
    await this.#leaveGroup?.().catch((err: unknown) => this.#log.warn('leaving the presence group failed; it expires on its own', { err }));
    await this.#groups?.stop();
    this.#hub?.close();
    await this.#tail?.stop();
    await this.#stopProbe?.();
    this.#health.stop();
    await this.#telemetry?.close();
    await this.#client?.close();
  }
}
