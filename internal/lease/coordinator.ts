import { setTimeout as sleep } from 'node:timers/promises';
import { describeError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { Lease, LeaseStore } from './types.js';

/** What the coordinator tells its owner. */
export interface CoordinatorHandlers {
  /** A partition is ours under `lease.epoch`: start working on it. */
  acquired(lease: Lease): void;
  /** The lease was lost (expired and taken, or renewal refused): stop at once, the epoch is fenced. */
  lost(partition: number): void;
  /** We are giving the partition up: finish the current batch, then resolve. */
  releasing(partition: number): Promise<void>;
}

/** Counters the coordinator updates; all optional. */
export interface CoordinatorMetrics {
  acquisitions?: { inc(): void };
  losses?: { inc(): void };
  owned?: { set(v: number): void };
}

/** Options for {@link PartitionCoordinator}. */
export interface CoordinatorOptions {
  store: LeaseStore;
  group: string;
  member: string;
  partitions: number;
  ttlMs: number;
  /** How often to heartbeat, renew and rebalance; well under `ttlMs`. */
  intervalMs: number;
  log: Logger;
  handlers: CoordinatorHandlers;
  metrics?: CoordinatorMetrics;
}

type State = 'idle' | 'running' | 'stopping' | 'stopped';

/**
 * Shares a group's partitions among its live members through leases.
 *
 * Each tick: heartbeat; renew held leases; shed leases above the fair share
 * ceil(P / live members) after the owner finishes its batch; take free or
 * expired leases up to the share. Only surplus moves, so adding a member moves
 * about P / members partitions and no more. Ticks never overlap.
 *
 * Lifecycle: idle -> running (start) -> stopping -> stopped (stop releases
 * every lease and leaves the group; idempotent).
 */
export class PartitionCoordinator {
  readonly #o: CoordinatorOptions;
  readonly #owned = new Map<number, Lease>();
  readonly #stop = new AbortController();
  #state: State = 'idle';
  #first: Promise<void> | undefined;
  #loop: Promise<void> | undefined;
  #stopped: Promise<void> | undefined;

  constructor(options: CoordinatorOptions) {
    if (options.intervalMs >= options.ttlMs) throw new RangeError('intervalMs must be below ttlMs');
    this.#o = options;
  }

  /** Leases held now, by partition. */
  get owned(): ReadonlyMap<number, Lease> {
    return this.#owned;
  }

  /**
   * Forgets a lease its owner found fenced (a newer epoch wrote downstream). It is
   * not renewed again, so it expires and is re-acquired under a fresh epoch.
   */
  forget(partition: number): void {
    if (!this.#owned.delete(partition)) return;
    this.#o.metrics?.losses?.inc();
    this.#o.metrics?.owned?.set(this.#owned.size);
  }

  /** Runs the first tick (so the caller knows it joined), then keeps ticking. */
  async start(): Promise<void> {
    if (this.#state !== 'idle') return;
    this.#state = 'running';
    this.#first = this.#tick();
    await this.#first;
    if (this.#state === 'running') this.#loop = this.#run();
  }

  /** Stops ticking, lets owners finish, releases every lease and leaves. */
  stop(): Promise<void> {
    this.#stopped ??= this.#shutdown();
    return this.#stopped;
  }

  async #shutdown(): Promise<void> {
    if (this.#state === 'idle') {
      this.#state = 'stopped';
      return;
    }
    this.#state = 'stopping';
    this.#stop.abort();
    // A stop during start waits for the first tick, so nothing it acquires is left held.
    await this.#first;
    await this.#loop;
    const { store, group, member, handlers, log } = this.#o;
    await Promise.all(
      [...this.#owned.values()].map(async (lease) => {
        await handlers.releasing(lease.partition);
        await store.release(lease).catch((err: unknown) => log.warn('release failed', { partition: lease.partition, err }));
        this.#owned.delete(lease.partition);
      }),
    );
    this.#o.metrics?.owned?.set(0);
    await store.leave(group, member).catch((err: unknown) => log.warn('leave failed', { err }));
    this.#state = 'stopped';
  }

  async #run(): Promise<void> {
    while (this.#state === 'running') {
      try {
        await sleep(this.#o.intervalMs, undefined, { signal: this.#stop.signal });
      } catch {
        return;
      }
      await this.#tick();
    }
  }

  async #tick(): Promise<void> {
    const { store, group, member, partitions, ttlMs, log } = this.#o;
    try {
      await store.heartbeat(group, member, ttlMs);
      await this.#renew();
      const live = Math.max(1, (await store.members(group)).length);
      const share = Math.ceil(partitions / live);
      if (this.#owned.size > share) await this.#shed(this.#owned.size - share);
      else if (this.#owned.size < share) await this.#take(share);
    } catch (err) {
      log.warn('lease tick failed', { err: describeError(err) });
      this.#dropExpired();
    }
    this.#o.metrics?.owned?.set(this.#owned.size);
  }

  async #renew(): Promise<void> {
    const { store, ttlMs, handlers, log } = this.#o;
    await Promise.all(
      [...this.#owned.values()].map(async (lease) => {
        const renewed = await store.renew(lease, ttlMs);
        if (renewed) {
          this.#owned.set(lease.partition, renewed);
          return;
        }
        this.#owned.delete(lease.partition);
        this.#o.metrics?.losses?.inc();
        log.warn('lease lost', { partition: lease.partition, epoch: lease.epoch });
        handlers.lost(lease.partition);
      }),
    );
  }

  /** When the store is unreachable we cannot renew: stop work before the lease can pass to someone else. */
  #dropExpired(): void {
    const now = Date.now();
    for (const lease of [...this.#owned.values()]) {
      if (lease.expiresAt.getTime() <= now) {
        this.#owned.delete(lease.partition);
        this.#o.metrics?.losses?.inc();
        this.#o.log.warn('lease expired without renewal', { partition: lease.partition });
        this.#o.handlers.lost(lease.partition);
      }
    }
  }

  async #shed(count: number): Promise<void> {
    // Highest partitions first: deterministic, so members agree on what moves.
    const surplus = [...this.#owned.values()].sort((a, b) => b.partition - a.partition).slice(0, count);
    await Promise.all(
      surplus.map(async (lease) => {
        await this.#o.handlers.releasing(lease.partition);
        this.#owned.delete(lease.partition);
        await this.#o.store.release(lease);
        this.#o.log.info('lease released for rebalance', { partition: lease.partition });
      }),
    );
  }

  async #take(share: number): Promise<void> {
    const { store, group, member, partitions, ttlMs, handlers, log } = this.#o;
    const now = Date.now();
    const held = new Set((await store.list(group)).filter((l) => l.holder !== '' && l.expiresAt.getTime() > now).map((l) => l.partition));
    // Start at a member-specific offset so joiners don't all race for partition 0.
    const offset = hashString(member) % partitions;
    for (let i = 0; i < partitions && this.#owned.size < share && this.#state === 'running'; i++) {
      const p = (offset + i) % partitions;
      if (held.has(p) || this.#owned.has(p)) continue;
      const lease = await store.acquire(group, p, member, ttlMs);
      if (!lease) continue;
      this.#owned.set(p, lease);
      this.#o.metrics?.acquisitions?.inc();
      log.info('lease acquired', { partition: p, epoch: lease.epoch });
      handlers.acquired(lease);
    }
  }
}

function hashString(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) >>> 0;
  return h;
}
