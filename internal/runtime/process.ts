import { Health, startDbProbe, type Condition } from '../health/index.js';
import type { Logger } from '../log/index.js';
import { startTelemetryServer, type Registry, type TelemetryServer } from '../telemetry/index.js';
import { startTracing, type Tracing, type TracingIdentity, type TracingSettings } from '../tracing/index.js';
import { openHubPorts, type HubPorts, type OpenPortsOptions } from './ports.js';
import type { HubSettings } from './settings.js';

/** What a {@link HubProcess} is built with: the binary's logger and metrics registry. */
export interface ProcessDeps {
  log: Logger;
  registry: Registry;
  /** A loop wedged this long makes the process exit (0: never). Default: Health's. */
  wedgeExitMs?: number;
  /** Called once a loop stayed wedged for `wedgeExitMs` (the binaries exit with code 1). */
  onWedged?: (reasons: string[]) => void;
}

/**
 * The set-up every binary shares, in one place: readiness and liveness
 * ({@link Health}, with a `start-up` condition until {@link started}), the
 * telemetry endpoint, the database with its ports and probe, and an ordered
 * stop. Whatever is opened registers how to close it; {@link stop} closes in
 * reverse order (last opened, first closed), so components stop before the
 * ports they use, and the endpoints answer "stopping" until the end.
 */
export class HubProcess {
  readonly health: Health;
  readonly log: Logger;
  readonly registry: Registry;
  readonly #abort = new AbortController();
  readonly #closers: Array<{ what: string; close: () => Promise<void> }> = [];
  readonly #starting: Condition;
  #stopping: Promise<void> | undefined;

  constructor(deps: ProcessDeps) {
    this.log = deps.log;
    this.registry = deps.registry;
    this.health = new Health({
      log: deps.log,
      registry: deps.registry,
      ...(deps.wedgeExitMs === undefined ? {} : { exitAfterMs: deps.wedgeExitMs }),
      ...(deps.onWedged ? { onWedged: deps.onWedged } : {}),
    });
    this.#starting = this.health.condition('start-up', { ok: false, reason: 'connecting to the database' });
  }

  /** Aborted when the process starts stopping: pass it to loops and waits. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /**
   * Starts span export when `settings` ask for it (else nothing is loaded), first, so the
   * spans of start-up are exported too. Registered to stop last: the spans of the stop
   * itself are flushed with the rest.
   */
  async startTracing(settings: TracingSettings | undefined, id: TracingIdentity): Promise<Tracing | undefined> {
    if (!settings?.enabled) return undefined;
    const tracing = await startTracing(settings, id, this.log);
    this.onStop('span export', () => tracing.shutdown());
    return tracing;
  }

  /** Serves `/metrics`, `/healthz` and `/readyz`, first, so they answer while the database is unreachable. */
  async serveTelemetry(host: string, port: number): Promise<TelemetryServer> {
    const telemetry = await startTelemetryServer({ host, port, registry: this.registry, health: this.health });
    this.onStop('telemetry', () => telemetry.close());
    this.log.info('telemetry listening', { port: telemetry.port });
    this.watchHealth();
    return telemetry;
  }

  /** Starts the watchdogs' clock (binaries that serve health themselves call it once listening). */
  watchHealth(): void {
    this.health.start();
  }

  /** Opens the hub's ports (waiting for the database as long as it takes) and probes the database from then on. */
  async openPorts(settings: HubSettings, options: Omit<OpenPortsOptions, 'log' | 'signal'>): Promise<HubPorts> {
    const ports = await openHubPorts(settings, { ...options, log: this.log, signal: this.signal });
    this.onStop('database', () => ports.close());
    const stopProbe = startDbProbe({ db: ports.db, health: this.health, log: this.log });
    this.onStop('database probe', stopProbe);
    return ports;
  }

  /** Registers how to close something just opened (closed in reverse order by {@link stop}). */
  onStop(what: string, close: () => Promise<void> | void): void {
    this.#closers.push({ what, close: async () => close() });
  }

  /** Start-up finished: the `start-up` readiness condition goes away. */
  started(): void {
    this.#starting.dispose();
  }

  /** Stops everything in reverse order of opening. Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.health.condition('stopping', { ok: false, reason: 'stopping' });
      this.#abort.abort();
      for (const { what, close } of this.#closers.splice(0).reverse()) {
        // One part failing to close must not keep the others open: logged, and the stop goes on.
        await close().catch((err: unknown) => this.log.warn(`closing the ${what} failed`, { err }));
      }
      this.health.stop();
    })();
    return this.#stopping;
  }
}
