import { describeError } from '../errors/index.js';
import type { EventLog } from '../eventlog/index.js';
import { PartitionCoordinator, type LeaseStore } from '../lease/index.js';
import { repeat } from '../lifecycle/index.js';
import type { Logger } from '../log/index.js';
import type { OutboxStore } from '../outbox/index.js';
import type { DrainerConfig } from './config.js';
import type { DrainerMetrics } from './metrics.js';
import { PartitionWorker } from './worker.js';

/** The lease group drainers share. */
export const DRAINER_LEASE_GROUP = 'drainer';

/** Ports and settings a {@link Drainer} runs on. */
export interface DrainerDeps {
  outbox: OutboxStore;
  eventLog: EventLog;
  leases: LeaseStore;
  log: Logger;
  metrics: DrainerMetrics;
  config: DrainerConfig;
}

type DrainerState = 'idle' | 'running' | 'stopping' | 'stopped';

/**
 * Moves outbox messages into the event log for the partitions this replica
 * leases. One {@link PartitionWorker} per held partition.
 *
 * Lifecycle: idle -> running -> stopping -> stopped. `stop` lets every worker
 * finish its batch, releases the leases (others take over at once, without
 * waiting for expiry) and clears every timer and stream it started.
 */
export class Drainer {
  readonly #d: DrainerDeps;
  readonly #workers = new Map<number, PartitionWorker>();
  readonly #coordinator: PartitionCoordinator;
  readonly #timers = new AbortController();
  readonly #loops: Array<Promise<void>> = [];
  #state: DrainerState = 'idle';
  #unwatch: (() => Promise<void>) | undefined;
  #stopped: Promise<void> | undefined;

  constructor(deps: DrainerDeps) {
    this.#d = deps;
    const { config, metrics, log } = deps;
    this.#coordinator = new PartitionCoordinator({
      store: deps.leases,
      group: DRAINER_LEASE_GROUP,
      member: config.member,
      partitions: config.partitions,
      ttlMs: config.leaseTtlMs,
      intervalMs: config.leaseRenewMs,
      log,
      metrics: {
        acquisitions: metrics.leaseAcquisitions,
        losses: metrics.leaseLosses,
        owned: metrics.partitionsOwned,
        renewSeconds: metrics.leaseRenewSeconds,
      },
      handlers: {
        acquired: (lease) => this.#startWorker(lease.partition, lease.epoch),
        lost: (p) => this.#removeWorker(p)?.kill(),
        releasing: async (p) => this.#removeWorker(p)?.finish(),
      },
    });
  }

  /** True once running and joined to the lease group. */
  get ready(): boolean {
    return this.#state === 'running';
  }

  /** Partitions this replica works on now. */
  get partitions(): number[] {
    return [...this.#workers.keys()].sort((a, b) => a - b);
  }

  async start(): Promise<void> {
    if (this.#state !== 'idle') return;
    const { config, log, outbox } = this.#d;
    this.#state = 'running';
    this.#unwatch = outbox.watchPending?.(
      (p) => this.#workers.get(p)?.wake(),
      (err) => log.warn('change stream failed; polling only', { err: describeError(err) }),
    );
    log.info('drainer starting', { member: config.member, partitions: config.partitions, wake: this.#unwatch ? 'change-stream' : 'poll' });
    await this.#coordinator.start();
    const signal = this.#timers.signal;
    const warn = (what: string) => (err: unknown) => log.warn(`${what} failed`, { err: describeError(err) });
    this.#loops.push(repeat(config.statsIntervalMs, signal, () => this.#collectStats(), warn('stats')));
  }

  stop(): Promise<void> {
    this.#stopped ??= this.#shutdown();
    return this.#stopped;
  }

  async #shutdown(): Promise<void> {
    this.#state = 'stopping';
    this.#timers.abort();
    await Promise.all(this.#loops);
    await this.#unwatch?.().catch(() => undefined);
    await this.#coordinator.stop();
    await Promise.all([...this.#workers.values()].map((w) => w.finish()));
    this.#workers.clear();
    this.#state = 'stopped';
  }

  #startWorker(partition: number, epoch: number): void {
    this.#workers.get(partition)?.kill();
    const worker = new PartitionWorker(partition, epoch, {
      ...this.#d,
      log: this.#d.log.child({ partition }),
      onFenced: (p) => {
        if (this.#workers.get(p) !== worker) return;
        this.#removeWorker(p);
        this.#coordinator.forget(p);
      },
    });
    this.#workers.set(partition, worker);
    worker.start();
  }

  #removeWorker(partition: number): PartitionWorker | undefined {
    const w = this.#workers.get(partition);
    this.#workers.delete(partition);
    const label = { partition: String(partition) };
    this.#d.metrics.pending.remove(label);
    this.#d.metrics.oldestPendingAge.remove(label);
    this.#d.metrics.deadMessages.remove(label);
    return w;
  }

  async #collectStats(): Promise<void> {
    const now = Date.now();
    for (const p of this.partitions) {
      const b = await this.#d.outbox.backlog(p);
      if (!this.#workers.has(p)) continue;
      const label = { partition: String(p) };
      this.#d.metrics.pending.set(label, b.pending);
      this.#d.metrics.oldestPendingAge.set(label, b.oldestPendingAt ? Math.max(0, (now - b.oldestPendingAt.getTime()) / 1000) : 0);
      this.#d.metrics.deadMessages.set(label, b.dead);
    }
  }
}
