import { createJoseVerifier } from '../auth/index.js';
import type { Health } from '../health/index.js';
import { repeat, type Service } from '../lifecycle/index.js';
import type { Logger } from '../log/index.js';
import { HubProcess } from '../runtime/index.js';
import type { Registry } from '../telemetry/index.js';
import type { GatewayConfig } from './config.js';
import { GroupManager } from '../groups/index.js';
import { LiveHub } from './hub.js';
import { PublishUseCase } from './publish.js';
import { createGatewayMetrics } from './metrics.js';
import { GatewayServer } from './server.js';
import { LogTail } from './tail.js';

/** A loop silent this long is wedged (its rounds are bounded by socket timeouts far shorter). */
const LOOP_SILENCE_MS = 120_000;

/** Membership group in which gateways announce themselves (no partitions). */
export const GATEWAY_PRESENCE_GROUP = 'gateway';

/**
 * The gateway process: telemetry, the hub's ports, the log tail, consumer
 * groups and the WebSocket server, on a {@link HubProcess}. Stop order (the
 * reverse of opening): refuse and close clients, leave the presence group,
 * release group leases after flushing cursors, stop the tail, close the rest.
 */
export class GatewayApp implements Service {
  readonly #config: GatewayConfig;
  readonly #process: HubProcess;
  #server: GatewayServer | undefined;
  #telemetryPort = 0;

  constructor(config: GatewayConfig, deps: { log: Logger; registry: Registry; onWedged?: (reasons: string[]) => void }) {
    this.#config = config;
    this.#process = new HubProcess({ ...deps, wedgeExitMs: config.wedgeExitMs });
  }

  /** Readiness and liveness as `/readyz` and `/healthz` report them. */
  get health(): Health {
    return this.#process.health;
  }

  /** The WebSocket port (useful when configured as 0). */
  get port(): number {
    return this.#server?.port ?? 0;
  }

  /** The telemetry port (`/metrics`, `/healthz`, `/readyz`). */
  get telemetryPort(): number {
    return this.#telemetryPort;
  }

  async start(): Promise<void> {
    const cfg = this.#config;
    const p = this.#process;
    const { health, log } = p;
    await p.startTracing(cfg.tracing, { binary: 'gateway', instance: cfg.instance });
    this.#telemetryPort = (await p.serveTelemetry(cfg.metricsHost, cfg.metricsPort)).port;
    const verifier = await createJoseVerifier({
      algorithms: cfg.jwt.algorithms,
      keys: cfg.jwt.keys,
      clockToleranceS: cfg.jwt.clockToleranceS,
      ...(cfg.jwt.issuer === undefined ? {} : { issuer: cfg.jwt.issuer }),
      ...(cfg.jwt.audience === undefined ? {} : { audience: cfg.jwt.audience }),
    });
    const ports = await p.openPorts(cfg, { appName: 'outbox-hub-gateway' });
    const metrics = createGatewayMetrics(p.registry);
    const tailDog = health.watchdog('log tail', LOOP_SILENCE_MS);
    const tail = new LogTail({
      eventLog: ports.eventLog,
      partitions: cfg.partitions,
      pollMinMs: cfg.pollMinMs,
      pollMaxMs: cfg.pollMaxMs,
      log,
      stallAfterMs: cfg.logStallAfterMs,
      reporter: cfg.instance,
      metrics: { stalled: metrics.logStalledPartitions, missingSeq: metrics.logMissingSeq },
      watch: ports.caps.changeStreams,
      onRound: (ok) => {
        tailDog.beat();
        if (!ok) health.dbError('log tail');
      },
    });
    await tail.start();
    p.onStop('log tail', () => tail.stop());
    const hub = new LiveHub(tail);
    p.onStop('live hub', () => hub.close());
    const groups = new GroupManager({
      eventLog: ports.eventLog,
      leases: ports.leases,
      store: ports.groupStore,
      tail,
      log,
      metrics,
      health,
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
    p.onStop('consumer groups', () => groups.stop());
    // Presence for operators: ops lists the gateways seen alive.
    const presenceDog = health.watchdog('presence heartbeat', LOOP_SILENCE_MS);
    const beat = async (): Promise<void> => {
      presenceDog.beat();
      await ports.leases.heartbeat(GATEWAY_PRESENCE_GROUP, cfg.instance, cfg.leaseTtlMs);
    };
    p.onStop('presence', () =>
      ports.leases
        .leave(GATEWAY_PRESENCE_GROUP, cfg.instance)
        .catch((err: unknown) => log.warn('leaving the presence group failed; it expires on its own', { err })),
    );
    const server = new GatewayServer({
      config: cfg,
      verifier,
      publisher: new PublishUseCase({
        outbox: ports.outbox({ maxPayloadBytes: cfg.maxPayloadBytes }),
        timeoutMs: cfg.publishTimeoutMs,
        database: { up: () => health.isOk('database'), onDown: (listener) => health.onFail('database', listener) },
      }),
      eventLog: ports.eventLog,
      tail,
      hub,
      groups,
      metrics,
      log,
    });
    this.#server = server;
    await server.start();
    p.onStop('WebSocket server', () => server.stop());
    await beat().catch((err: unknown) => log.warn('presence heartbeat failed', { err }));
    const presence = repeat(cfg.leaseRenewMs, p.signal, beat, (err) => {
      health.dbError('presence');
      log.warn('presence heartbeat failed', { err });
    });
    p.onStop('presence heartbeat', () => presence);
    // Readiness: the tail must keep reading (a tail that cannot read serves no subscriber).
    const tailReading = health.condition('log tail', { ok: true });
    const bound = Math.max(10_000, 5 * cfg.pollMaxMs);
    const tailCheck = repeat(
      1_000,
      p.signal,
      async () => {
        const silent = Date.now() - tail.lastReadAt;
        tailReading.set(silent <= bound, `no successful read of the log for ${Math.round(silent / 1000)} s`);
        return Promise.resolve();
      },
      () => undefined,
    );
    p.onStop('log tail check', () => tailCheck);
    p.started();
  }

  stop(): Promise<void> {
    return this.#process.stop();
  }
}
