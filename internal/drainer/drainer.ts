import { describeError } from '../errors/index.js';
import type { EventAppender, EventReader, LogEvent } from '../eventlog/index.js';
import type { GroupStore } from '../groupstore/index.js';
import { RetentionKeeper, type GroupInterest, type RetentionLog } from '../retention/index.js';
import { TopicPattern } from '../topic/index.js';
import { PartitionCoordinator, type LeaseStore } from '../lease/index.js';
import type { Condition, Health, Watchdog } from '../health/index.js';
import { repeat } from '../lifecycle/index.js';
import type { Logger } from '../log/index.js';
import type { OutboxStore } from '../outbox/index.js';
import type { DrainerConfig } from './config.js';
import type { DrainerMetrics } from './metrics.js';
import { DrainTraffic } from './traffic.js';
import { PartitionWorker } from './worker.js';

/** The lease group drainers share. */
export const DRAINER_LEASE_GROUP = 'drainer';

/** Ports and settings a {@link Drainer} runs on. */
export interface DrainerDeps {
  outbox: OutboxStore;
  /** Appends under the lease epoch; retention's role too (trims and compacts under it). */
  eventLog: EventAppender & Pick<EventReader, 'get'> & RetentionLog;
  /** Consumer groups' filters and cursors, for `keepForGroups` retention (read once per retention round). */
  groups?: Pick<GroupStore, 'listGroups' | 'loadCursors'>;
  leases: LeaseStore;
  log: Logger;
  metrics: DrainerMetrics;
  config: DrainerConfig;
  /** Readiness conditions and loop watchdogs (optional for tests that need none). */
  health?: Health;
}

/** Most consumer groups interest retention reads per round. */
const MAX_INTEREST_GROUPS = 1_000;

/** A loop silent this long is wedged (bounded waits and socket timeouts are far shorter). */
const LOOP_SILENCE_MS = 120_000;

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
  /** Per held partition: when it was last known up to date or moved a batch. */
  readonly #progress = new Map<number, number>();
  readonly #dogs = new Map<number, Watchdog>();
  readonly #leaseCondition: Condition | undefined;
  readonly #progressCondition: Condition | undefined;
  #state: DrainerState = 'idle';
  #unwatch: (() => Promise<void>) | undefined;
  #stopped: Promise<void> | undefined;
  /** Set when the deployment has retention policies. */
  readonly #retention: RetentionKeeper | undefined;
  /** The batches under way, which retention gives way to. */
  readonly #traffic = new DrainTraffic();

  constructor(deps: DrainerDeps) {
    this.#d = deps;
    const { config, metrics, log, health } = deps;
    this.#retention = config.retention.active
      ? new RetentionKeeper({
          log: deps.eventLog,
          policies: config.retention,
          logger: log,
          metrics: {
            trimmed: metrics.retentionTrimmed,
            first: metrics.retentionFirst,
            forced: metrics.retentionForced,
            behind: metrics.retentionBehind,
          },
          traffic: this.#traffic,
        })
      : undefined;
    this.#leaseCondition = health?.condition('leases', { ok: false, reason: 'joining the lease group' });
    this.#progressCondition = health?.condition('partitions', { ok: true });
    const loopDogs = {
      renewal: health?.watchdog('lease renewal', LOOP_SILENCE_MS),
      rebalance: health?.watchdog('lease rebalance', LOOP_SILENCE_MS),
    };
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
      onRound: (loop, ok) => {
        loopDogs[loop]?.beat();
        if (loop === 'renewal') this.#leaseCondition?.set(ok, ok ? '' : 'lease renewals are failing');
        if (!ok) health?.dbError(`lease ${loop}`);
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
      (err) => log.warn('change stream failed; polling meanwhile, reopening it', { err }),
    );
    log.info('drainer starting', { member: config.member, partitions: config.partitions, wake: this.#unwatch ? 'change-stream' : 'poll' });
    await this.#coordinator.start();
    const signal = this.#timers.signal;
    const warn = (what: string) => (err: unknown) => log.warn(`${what} failed`, { err: describeError(err) });
    const statsDog = this.#d.health?.watchdog('backlog statistics', LOOP_SILENCE_MS);
    this.#loops.push(
      repeat(
        config.statsIntervalMs,
        signal,
        async () => {
          statsDog?.beat();
          this.#checkProgress();
          await this.#collectStats();
        },
        (err) => {
          this.#d.health?.dbError('stats');
          warn('backlog statistics')(err);
        },
      ),
    );
    const keeper = this.#retention;
    if (keeper) {
      const retentionDog = this.#d.health?.watchdog('retention', LOOP_SILENCE_MS);
      this.#loops.push(
        repeat(
          config.retentionIntervalMs,
          signal,
          async () => {
            retentionDog?.beat();
            await this.#retentionRound(keeper, () => retentionDog?.beat());
          },
          (err) => {
            this.#d.health?.dbError('retention');
            warn('retention round')(err);
          },
        ),
      );
    }
  }

  /**
   * One retention round over the partitions held now, each under its own epoch (a
   * partition lost meanwhile is fenced: its round fails and the next holder's goes on).
   */
  async #retentionRound(keeper: RetentionKeeper, beat: () => void): Promise<void> {
    const groups =
      keeper.policies.topics.some((p) => p.keepForGroups) || keeper.policies.default.keepForGroups ? await this.#interest() : [];
    for (const [partition, worker] of [...this.#workers]) {
      if (this.#timers.signal.aborted) return;
      const started = Date.now();
      // Paced rounds over many partitions take a while: each one shows the loop alive.
      beat();
      try {
        await keeper.round(partition, worker.epoch, groups, this.#timers.signal);
      } catch (err) {
        // Stopping: the round's pause was cut short, nothing failed.
        if (this.#timers.signal.aborted) return;
        // One partition's failure (fenced, or the database) must not stop the others' rounds.
        this.#d.log.warn('retention round failed', { partition, err: describeError(err) });
        this.#d.health?.dbError('retention');
      } finally {
        this.#d.metrics.retentionRoundSeconds.observe((Date.now() - started) / 1000);
      }
    }
  }

  /** Registered groups with their filters and cursors (bounded: the first MAX_INTEREST_GROUPS by name). */
  async #interest(): Promise<GroupInterest[]> {
    const store = this.#d.groups;
    if (!store) return [];
    const records = await store.listGroups(MAX_INTEREST_GROUPS);
    return Promise.all(
      records.map(async (g) => ({
        name: g.name,
        filter: TopicPattern.compile(g.filter),
        cursors: await store.loadCursors(g.name),
        ...(g.tags === undefined ? {} : { tags: g.tags }),
      })),
    );
  }

  stop(): Promise<void> {
    this.#stopped ??= this.#shutdown();
    return this.#stopped;
  }

  async #shutdown(): Promise<void> {
    this.#state = 'stopping';
    this.#timers.abort();
    await Promise.all(this.#loops);
    await this.#unwatch?.().catch((err: unknown) => this.#d.log.warn('closing the change stream failed', { err }));
    await this.#coordinator.stop();
    await Promise.all([...this.#workers.values()].map((w) => w.finish()));
    this.#workers.clear();
    this.#state = 'stopped';
  }

  #startWorker(partition: number, epoch: number): void {
    this.#workers.get(partition)?.kill();
    this.#progress.set(partition, Date.now());
    this.#dogs.get(partition)?.dispose();
    const dog = this.#d.health?.watchdog(`partition ${partition} worker`, LOOP_SILENCE_MS);
    if (dog) this.#dogs.set(partition, dog);
    // The drainer's own logger, not a child binding `partition`: every worker line names its
    // partition itself, and a bound copy would only repeat it.
    const keeper = this.#retention;
    const worker = new PartitionWorker(partition, epoch, {
      ...this.#d,
      ...(keeper
        ? { traffic: this.#traffic, onAppended: (p: number, e: number, events: readonly LogEvent[]) => keeper.appended(p, e, events) }
        : {}),
      onRound: () => dog?.beat(),
      onProgress: (p) => this.#progress.set(p, Date.now()),
      onDbError: () => this.#d.health?.dbError('drain'),
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
    this.#retention?.forget(partition);
    this.#d.metrics.retentionFirst.remove({ partition: String(partition) });
    // Not ours any more: a stale 1 would keep OutboxRetentionBehind firing.
    this.#d.metrics.retentionBehind.remove({ partition: String(partition) });
    this.#progress.delete(partition);
    this.#dogs.get(partition)?.dispose();
    this.#dogs.delete(partition);
    const label = { partition: String(partition) };
    this.#d.metrics.pending.remove(label);
    this.#d.metrics.oldestPendingAge.remove(label);
    this.#d.metrics.deadMessages.remove(label);
    return w;
  }

  /** Readiness: every held partition was up to date or moved a batch within the progress timeout. */
  #checkProgress(): void {
    const now = Date.now();
    const stuck = [...this.#progress].filter(([, at]) => now - at > this.#d.config.progressTimeoutMs).map(([p]) => p);
    this.#progressCondition?.set(
      stuck.length === 0,
      `no progress for ${Math.round(this.#d.config.progressTimeoutMs / 1000)} s on partitions ${stuck.sort((a, b) => a - b).join(', ')}`,
    );
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
