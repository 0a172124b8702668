import { Drainer } from './drainer.js';
import type { DrainerConfig } from './config.js';
import { createDrainerMetrics } from './metrics.js';
import type { Health } from '../health/index.js';
import type { Service } from '../lifecycle/index.js';
import type { Logger } from '../log/index.js';
import { HubProcess } from '../runtime/index.js';
import type { Registry } from '../telemetry/index.js';

/**
 * The drainer process: telemetry first (so /healthz and /readyz answer while
 * the database is still unreachable), then the hub's ports (the database waited
 * for as long as it takes, migrated and probed) and the {@link Drainer}. Stops
 * in reverse order through its {@link HubProcess}.
 */
export class DrainerApp implements Service {
  readonly #config: DrainerConfig;
  readonly #process: HubProcess;

  constructor(config: DrainerConfig, deps: { log: Logger; registry: Registry; onWedged?: (reasons: string[]) => void }) {
    this.#config = config;
    this.#process = new HubProcess({ ...deps, wedgeExitMs: config.wedgeExitMs });
  }

  /** Readiness and liveness as `/readyz` and `/healthz` report them. */
  get health(): Health {
    return this.#process.health;
  }

  async start(): Promise<void> {
    const cfg = this.#config;
    const p = this.#process;
    await p.startTracing(cfg.tracing, { binary: 'drainer', instance: cfg.member });
    await p.serveTelemetry(cfg.metricsHost, cfg.metricsPort);
    const ports = await p.openPorts(cfg, { appName: 'outbox-hub-drainer' });
    const drainer = new Drainer({
      outbox: ports.outboxStore,
      eventLog: ports.eventLog,
      groups: ports.groupStore,
      leases: ports.leases,
      log: p.log,
      metrics: createDrainerMetrics(p.registry),
      config: cfg,
      health: p.health,
    });
    p.onStop('drainer', () => drainer.stop());
    await drainer.start();
    p.started();
  }

  stop(): Promise<void> {
    return this.#process.stop();
  }
}
