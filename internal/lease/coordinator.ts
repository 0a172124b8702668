import { setTimeout as sleep } from 'node:timers/promises';
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
  /** Seconds one renewal round (heartbeat + every held lease) took. */
  renewSeconds?: { observe(v: number): void };
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
  /** Called after every round of either loop, `ok` false when it failed: watchdogs and readiness. */
  onRound?: (loop: 'renewal' | 'rebalance', ok: boolean) => void;
}

type State = 'idle' | 'running' | 'stopping' | 'stopped';

/**
 * Shares a group's partitions among its live members through leases.
 *
 * Two loops that never wait for each other:
 * - renewal, every interval: heartbeat and renew every held lease in parallel.
 *   It never waits behind acquisitions or the owner's work, so a slow takeover
 *   elsewhere cannot make our leases lapse.
 * - rebalance, every interval: shed leases above the fair share
 *   ceil(P / live members) after the owner finishes its batch; take free leases
 *   up to the share. Only surplus moves.
 *
 * No livelock: a lease expired less than one interval ago is left to its holder
 * (its renewal may be in flight); a partition we lost is not retried for one TTL;
 * a renewal round slower than half the TTL is logged as a configuration error.
 *
 * Lifecycle: idle -> running (start) -> stopping -> stopped (stop releases
 * every lease and leaves the group; idempotent).
 */
export class PartitionCoordinator {
  readonly #o: CoordinatorOptions;
  readonly #owned = new Map<number, Lease>();
  /** Partitions lost recently, with when we may try them again. */
  readonly #coolDown = new Map<number, number>();
  readonly #stop = new AbortController();
  #state: State = 'idle';
  #first: Promise<void> | undefined;
  #loops: Array<Promise<void>> = [];
  #stopped: Promise<void> | undefined;
  #lastSlowWarning = 0;
  #lastRoundOk = true;

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
    this.#coolDown.set(partition, Date.now() + this.#o.ttlMs);
    this.#o.metrics?.losses?.inc();
    this.#o.metrics?.owned?.set(this.#owned.size);
  }

  /** Runs the first round of both loops (so the caller knows it joined), then keeps them going. */
  async start(): Promise<void> {
    if (this.#state !== 'idle') return;
    this.#state = 'running';
    this.#first = (async () => {
      await this.#renewRound();
      await this.#balanceRound();
    })();
    await this.#first;
    if (this.#state !== 'running') return;
    this.#loops = [this.#every(() => this.#renewRound()), this.#every(() => this.#balanceRound())];
  }

  /** Stops both loops, lets owners finish, releases every lease and leaves. */
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
    // A stop during start waits for the first round, so nothing it acquires is left held.
    await this.#first;
    await Promise.all(this.#loops);
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

  async #every(round: () => Promise<void>): Promise<void> {
    while (this.#state === 'running') {
      try {
        await sleep(this.#o.intervalMs, undefined, { signal: this.#stop.signal });
      } catch {
        return; // stopping
      }
      await round();
    }
  }

  async #renewRound(): Promise<void> {
    const { store, group, member, ttlMs, log } = this.#o;
    const started = Date.now();
    let ok = true;
    try {
      await Promise.all([store.heartbeat(group, member, ttlMs), ...[...this.#owned.values()].map((lease) => this.#renew(lease))]);
    } catch (err) {
      ok = false;
      log.warn('lease renewal failed', { err });
    }
    this.#dropExpired();
    this.#o.onRound?.('renewal', ok);
    const took = Date.now() - started;
    this.#o.metrics?.renewSeconds?.observe(took / 1000);
    // A round right after a failed one waited for the server to come back: that measures the
    // outage, not the configuration.
    const steady = ok && this.#lastRoundOk;
    this.#lastRoundOk = ok;
    if (steady && took > ttlMs / 2 && Date.now() - this.#lastSlowWarning > ttlMs) {
      this.#lastSlowWarning = Date.now();
      log.error('lease renewal is slower than half the lease TTL: leases will lapse under load; raise the lease TTL', {
        tookMs: took,
        ttlMs,
      });
    }
    this.#o.metrics?.owned?.set(this.#owned.size);
  }

  async #renew(lease: Lease): Promise<void> {
    const { store, ttlMs, handlers, log } = this.#o;
    const renewed = await store.renew(lease, ttlMs);
    // Shed, forgotten or replaced while the renewal was in flight: not ours to touch.
    if (this.#owned.get(lease.partition) !== lease) return;
    if (renewed) {
      this.#owned.set(lease.partition, renewed);
      return;
    }
    this.#lose(lease.partition);
    log.warn('lease lost', { partition: lease.partition, epoch: lease.epoch });
    handlers.lost(lease.partition);
  }

  async #balanceRound(): Promise<void> {
    const { store, group, partitions, log } = this.#o;
    try {
      const live = Math.max(1, (await store.members(group)).length);
      const share = Math.ceil(partitions / live);
      if (this.#owned.size > share) await this.#shed(this.#owned.size - share);
      else if (this.#owned.size < share) await this.#take(share);
      this.#o.onRound?.('rebalance', true);
    } catch (err) {
      log.warn('lease rebalance failed', { err });
      this.#o.onRound?.('rebalance', false);
    }
    this.#o.metrics?.owned?.set(this.#owned.size);
  }

  /** When the store is unreachable we cannot renew: stop work before the lease can pass to someone else. */
  #dropExpired(): void {
    const now = Date.now();
    for (const lease of [...this.#owned.values()]) {
      if (lease.expiresAt.getTime() <= now) {
        this.#lose(lease.partition);
        this.#o.log.warn('lease expired without renewal', { partition: lease.partition });
        this.#o.handlers.lost(lease.partition);
      }
    }
  }

  #lose(partition: number): void {
    this.#owned.delete(partition);
    this.#coolDown.set(partition, Date.now() + this.#o.ttlMs);
    this.#o.metrics?.losses?.inc();
  }

  async #shed(count: number): Promise<void> {
    // Highest partitions first: deterministic, so members agree on what moves.
    const surplus = [...this.#owned.values()].sort((a, b) => b.partition - a.partition).slice(0, count);
    await Promise.all(
      surplus.map(async (lease) => {
        await this.#o.handlers.releasing(lease.partition);
        // Renewed meanwhile (same epoch, later expiry) or lost: release what we hold now, if anything.
        const current = this.#owned.get(lease.partition);
        if (!current || current.epoch !== lease.epoch) return;
        this.#owned.delete(lease.partition);
        await this.#o.store.release(current);
        this.#o.log.info('lease released for rebalance', { partition: lease.partition });
      }),
    );
  }

  async #take(share: number): Promise<void> {
    const { store, group, member, partitions, ttlMs, intervalMs, handlers, log } = this.#o;
    const now = Date.now();
    // A lease that expired less than one interval ago may be in the middle of its renewal: leave it.
    const held = new Set(
      (await store.list(group)).filter((l) => l.holder !== '' && l.expiresAt.getTime() + intervalMs > now).map((l) => l.partition),
    );
    // Start at a member-specific offset so joiners don't all race for partition 0.
    const offset = hashString(member) % partitions;
    for (let i = 0; i < partitions && this.#owned.size < share && this.#state === 'running'; i++) {
      const p = (offset + i) % partitions;
      if (held.has(p) || this.#owned.has(p) || (this.#coolDown.get(p) ?? 0) > Date.now()) continue;
      const lease = await store.acquire(group, p, member, ttlMs);
      if (!lease) continue;
      if (this.#state !== 'running') {
        await store.release(lease);
        return;
      }
      this.#coolDown.delete(p);
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
