/**
 * What `/readyz` and `/healthz` report, from the binary's real state.
 *
 * - Readiness is the conjunction of named conditions a component sets as it
 *   learns (the database answers the probe, partitions make progress, the log
 *   tail advances...): false while the binary cannot do its job.
 * - Liveness is a watchdog per long-running loop: each loop beats as it goes
 *   round; a loop silent for longer than its bound is wedged. A loop wedged for
 *   `exitAfterMs` makes the process exit non-zero (`onWedged`), so an
 *   orchestrator restarts it even where no liveness probe runs.
 *
 * Invariants: no module state; every timer is started by `start()` and
 * cleared by `stop()`; the probe never runs two pings at once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Db } from 'mongodb';
import type { Logger } from '../log/index.js';
import { Counter, Gauge, type Registry } from '../telemetry/index.js';

/** A readiness condition. */
export interface Condition {
  readonly name: string;
  /** Records the current state; `reason` says why it is not ok. */
  set(ok: boolean, reason?: string): void;
  readonly ok: boolean;
  /** Removes the condition (e.g. a partition given up). */
  dispose(): void;
}

/** A loop's watchdog. */
export interface Watchdog {
  readonly name: string;
  /** The loop went round. */
  beat(): void;
  /** Removes the watchdog (the loop ended on purpose). */
  dispose(): void;
}

/** A readiness or liveness verdict. */
export interface Verdict {
  ok: boolean;
  /** Why not, one entry per failing condition or wedged loop. */
  reasons: string[];
}

/** Options of {@link Health}. */
export interface HealthOptions {
  log: Logger;
  registry?: Registry;
  /** A loop silent this long past its own bound makes the process exit. Default 120 s; 0 never exits. */
  exitAfterMs?: number;
  /** Called once when a loop stays wedged for `exitAfterMs` (the binaries exit with code 1). */
  onWedged?: (reasons: string[]) => void;
}

interface DogState {
  maxSilenceMs: number;
  last: number;
}

/** Readiness conditions and loop watchdogs of one process. */
export class Health {
  readonly #o: HealthOptions;
  readonly #conditions = new Map<string, { ok: boolean; reason: string }>();
  /** Per condition name, who wants to hear the moment it stops holding. */
  readonly #onFail = new Map<string, Set<() => void>>();
  readonly #dogs = new Map<string, DogState>();
  readonly #dbErrors: Counter<'source'> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #wedgedSince = 0;
  #exited = false;

  constructor(options: HealthOptions) {
    this.#o = options;
    if (options.registry) {
      const registers = [options.registry];
      // Collected on scrape: the gauges always say what /readyz and /healthz would.
      const ready = (): boolean => this.ready().ok;
      const healthy = (): boolean => this.healthy().ok;
      new Gauge({
        name: 'hub_ready',
        help: '1 when the process can do its job (what /readyz answers)',
        registers,
        collect() {
          this.set(ready() ? 1 : 0);
        },
      });
      new Gauge({
        name: 'hub_healthy',
        help: '1 when no loop is wedged (what /healthz answers)',
        registers,
        collect() {
          this.set(healthy() ? 1 : 0);
        },
      });
      this.#dbErrors = new Counter({
        name: 'hub_db_errors_total',
        help: 'Database operations that failed, by where they failed',
        labelNames: ['source'],
        registers,
      });
    }
  }

  /** A readiness condition, not ok until set (unless `initial` says otherwise). */
  condition(name: string, initial: { ok: boolean; reason?: string } = { ok: false, reason: 'starting' }): Condition {
    this.#conditions.set(name, { ok: initial.ok, reason: initial.reason ?? '' });
    const conditions = this.#conditions;
    const onFail = this.#onFail;
    return {
      name,
      set(ok: boolean, reason = '') {
        const was = conditions.get(name);
        if (!was) return;
        conditions.set(name, { ok, reason });
        if (was.ok && !ok) for (const listener of [...(onFail.get(name) ?? [])]) listener();
      },
      get ok() {
        return conditions.get(name)?.ok ?? true;
      },
      dispose: () => void conditions.delete(name),
    };
  }

  /**
   * Calls `listener` each time condition `name` goes from holding to failing
   * (e.g. the database probe notices an outage). Returns its removal.
   */
  onFail(name: string, listener: () => void): () => void {
    let set = this.#onFail.get(name);
    if (!set) this.#onFail.set(name, (set = new Set()));
    set.add(listener);
    return () => void set.delete(listener);
  }

  /** A watchdog for a loop that goes round at least every `maxSilenceMs`. */
  watchdog(name: string, maxSilenceMs: number): Watchdog {
    const state: DogState = { maxSilenceMs, last: Date.now() };
    this.#dogs.set(name, state);
    return {
      name,
      beat: () => void (state.last = Date.now()),
      dispose: () => {
        if (this.#dogs.get(name) === state) this.#dogs.delete(name);
      },
    };
  }

  /** Whether condition `name` holds now (true for an unknown name). */
  isOk(name: string): boolean {
    return this.#conditions.get(name)?.ok ?? true;
  }

  /** Counts a failed database operation. */
  dbError(source: string): void {
    this.#dbErrors?.inc({ source });
  }

  ready(): Verdict {
    const reasons = [...this.#conditions].filter(([, c]) => !c.ok).map(([n, c]) => (c.reason ? `${n}: ${c.reason}` : n));
    const wedged = this.healthy();
    return { ok: reasons.length === 0 && wedged.ok, reasons: [...reasons, ...wedged.reasons] };
  }

  healthy(): Verdict {
    const now = Date.now();
    const reasons = [...this.#dogs]
      .filter(([, d]) => now - d.last > d.maxSilenceMs)
      .map(([n, d]) => `${n}: no progress for ${Math.round((now - d.last) / 1000)} s (bound ${Math.round(d.maxSilenceMs / 1000)} s)`);
    return { ok: reasons.length === 0, reasons };
  }

  /** Starts watching for wedged loops. */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#check(), 1_000);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #check(): void {
    const verdict = this.healthy();
    if (verdict.ok) {
      if (this.#wedgedSince !== 0) this.#o.log.info('no loop is wedged any more');
      this.#wedgedSince = 0;
      return;
    }
    const now = Date.now();
    if (this.#wedgedSince === 0) {
      this.#wedgedSince = now;
      this.#o.log.error('a loop is wedged: /healthz fails', { reasons: verdict.reasons });
    }
    const exitAfter = this.#o.exitAfterMs ?? 120_000;
    if (exitAfter > 0 && now - this.#wedgedSince >= exitAfter && !this.#exited) {
      this.#exited = true;
      this.#o.log.error('a loop stayed wedged; exiting so that the process is restarted', { reasons: verdict.reasons });
      this.#o.onWedged?.(verdict.reasons);
    }
  }
}

/** Options of {@link startDbProbe}. */
export interface DbProbeOptions {
  db: Db;
  health: Health;
  log: Logger;
  /** Default 2 s. */
  intervalMs?: number;
  /** A ping slower than this counts as a failure. Default 2 s. */
  timeoutMs?: number;
}

/**
 * Pings the database every interval and keeps the `database` readiness
 * condition (and its watchdog) current. Returns its stop function.
 */
export function startDbProbe(options: DbProbeOptions): () => Promise<void> {
  const { db, health, log } = options;
  const intervalMs = options.intervalMs ?? 2_000;
  const timeoutMs = options.timeoutMs ?? 2_000;
  const condition = health.condition('database', { ok: true });
  const dog = health.watchdog('database probe', intervalMs + timeoutMs + 30_000);
  const stop = new AbortController();
  const loop = (async () => {
    while (!stop.signal.aborted) {
      const started = Date.now();
      // A frozen server never answers: the ping races a timer that this round always cancels.
      const round = new AbortController();
      try {
        await Promise.race([
          db.command({ ping: 1 }),
          sleep(timeoutMs, undefined, { signal: AbortSignal.any([round.signal, stop.signal]) }).then(() => {
            throw new Error(`no answer within ${timeoutMs} ms`);
          }),
        ]);
        if (!condition.ok) log.info('database reachable again');
        condition.set(true);
      } catch (err) {
        if (stop.signal.aborted) break;
        if (condition.ok) log.warn('database unreachable: not ready', { err });
        condition.set(false, err instanceof Error ? err.message : String(err));
        health.dbError('probe');
      } finally {
        round.abort();
      }
      dog.beat();
      // Rejects only when stopping, which ends the loop.
      await sleep(Math.max(0, intervalMs - (Date.now() - started)), undefined, { signal: stop.signal }).catch(() => undefined);
    }
  })();
  return async () => {
    stop.abort();
    await loop;
    condition.dispose();
    dog.dispose();
  };
}
