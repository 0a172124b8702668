import { describeError } from '../errors/index.js';
import type { Watchdog } from '../health/index.js';
import { groupLeaseGroup } from '../groupstore/index.js';
import { PartitionCoordinator } from '../lease/index.js';
import type { TopicPattern } from '../topic/index.js';
import { Fifo } from './fifo.js';
import { GroupPartition } from './partition.js';
import { Slot, type Delivery } from './slot.js';
import type { GroupDeps, GroupMember } from './types.js';

/** A lease loop silent this long is wedged (its rounds are bounded by socket timeouts far shorter). */
const LOOP_SILENCE_MS = 120_000;

/**
 * One consumer group's presence on this gateway: its local members and the
 * partitions this gateway holds leases on.
 *
 * Members with spare capacity wait in a ring (round-robin); partitions with
 * deliveries but no member to take them wait in a FIFO and are fed in turn as
 * capacity frees. Each member indexes its deliveries in flight by event id, so
 * a settlement finds its delivery directly and only from the member that holds
 * it. None of this grows with the number of members or partitions per event.
 */
export class GroupRuntime {
  readonly name: string;
  readonly filter: TopicPattern;
  /** Tags every event the group consumes carries (sorted; empty: every event of the filter). */
  readonly tags: readonly string[];
  readonly deps: GroupDeps;
  readonly #members = new Set<Slot>();
  /** Trimmed-prefix skips no active member has heard yet, by partition (at most one per partition). */
  readonly #unheard = new Map<number, number>();
  /** Members with spare capacity, in round-robin order (entries of gone or full members are skipped lazily). */
  readonly #ring = new Fifo<Slot>();
  /** Partitions with ready deliveries waiting for a member, oldest first. */
  readonly #hungry = new Fifo<GroupPartition>();
  /** The partition being fed now (it may dispatch ahead of the queue). */
  #feeding: GroupPartition | undefined;
  #feedScheduled = false;
  readonly #partitions = new Map<number, GroupPartition>();
  readonly #coordinator: PartitionCoordinator;
  readonly #dogs: Watchdog[];
  #unlisten: (() => void) | undefined;

  constructor(name: string, filter: TopicPattern, deps: GroupDeps, tags: readonly string[] = []) {
    this.name = name;
    this.filter = filter;
    this.tags = tags;
    this.deps = deps;
    const s = deps.settings;
    const dogs = {
      renewal: deps.health?.watchdog(`group ${name} lease renewal`, LOOP_SILENCE_MS),
      rebalance: deps.health?.watchdog(`group ${name} lease rebalance`, LOOP_SILENCE_MS),
    };
    this.#dogs = [dogs.renewal, dogs.rebalance].filter((d) => d !== undefined);
    // Exported at 0 from the group's start here: a group's first dead letter or
    // redelivery then shows as an increase, not as a series appearing at 1.
    deps.metrics.deadLetters.inc({ group: name }, 0);
    deps.metrics.trimmedSkips?.inc({ group: name }, 0);
    deps.metrics.redeliveries.inc({ group: name }, 0);
    this.#coordinator = new PartitionCoordinator({
      onRound: (loop, ok) => {
        dogs[loop]?.beat();
        if (!ok) deps.health?.dbError(`group ${loop}`);
      },
      store: deps.leases,
      group: groupLeaseGroup(name),
      member: s.instance,
      partitions: s.partitions,
      ttlMs: s.leaseTtlMs,
      intervalMs: s.leaseRenewMs,
      log: deps.log.child({ group: name }),
      handlers: {
        acquired: (lease) => {
          const gp = new GroupPartition(this, lease.partition, lease.epoch);
          this.#partitions.set(lease.partition, gp);
          gp.start().catch((err: unknown) => {
            deps.log.warn('group partition start failed', { group: name, partition: lease.partition, err: describeError(err) });
            this.#drop(lease.partition);
            this.#coordinator.forget(lease.partition);
          });
        },
        lost: (p) => this.#drop(p),
        releasing: async (p) => {
          const gp = this.#partitions.get(p);
          this.#partitions.delete(p);
          await gp?.finish();
        },
      },
    });
  }

  get memberCount(): number {
    return this.#members.size;
  }

  async start(): Promise<void> {
    this.#unlisten = this.deps.tail.listen((events) => {
      const touched = new Set(events.map((e) => e.partition));
      for (const p of touched) this.#partitions.get(p)?.pump();
    });
    await this.#coordinator.start();
  }

  async stop(): Promise<void> {
    this.#unlisten?.();
    await this.#coordinator.stop();
    for (const d of this.#dogs) d.dispose();
    for (const p of [...this.#partitions.keys()]) this.#drop(p);
  }

  /** Whether a (running or starting) partition `p` of this group is held here. */
  holds(p: number): boolean {
    return this.#partitions.has(p);
  }

  /** A partition found a newer epoch downstream: stop it and let its lease lapse for a clean re-acquire. */
  fenced(p: number, gp: GroupPartition): void {
    if (this.#partitions.get(p) !== gp) return;
    this.#drop(p);
    this.#coordinator.forget(p);
  }

  #drop(p: number): void {
    const gp = this.#partitions.get(p);
    this.#partitions.delete(p);
    gp?.abort();
  }

  /** Adds a member that takes no deliveries until {@link activate}. */
  add(member: GroupMember): Slot {
    const slot = new Slot(member);
    this.#members.add(slot);
    return slot;
  }

  activate(slot: Slot): void {
    if (slot.active || slot.gone) return;
    slot.active = true;
    // Skips announced before any member could hear them (a partition starts while its first member joins).
    for (const [partition, first] of this.#unheard) slot.member.trimmed?.(partition, first);
    this.#unheard.clear();
    this.#offer(slot);
  }

  /**
   * Tells this gateway's active members that `partition` skipped a trimmed prefix and now
   * starts at `first`; kept for the next member to activate when none is active yet.
   */
  trimmed(partition: number, first: number): void {
    const active = [...this.#members].filter((s) => s.active && !s.gone);
    if (active.length === 0) this.#unheard.set(partition, first);
    for (const slot of active) slot.member.trimmed?.(partition, first);
  }

  remove(slot: Slot): void {
    if (!this.#members.delete(slot)) return;
    slot.gone = true;
    for (const d of [...slot.deliveries.values()]) d.partition.giveBack(d);
  }

  /** Takes one unit of capacity from the next member in round-robin order. */
  takeSlot(): Slot | undefined {
    for (let n = this.#ring.length; n > 0; n--) {
      const s = this.#ring.shift() as Slot;
      s.queued = false;
      if (s.gone || s.inFlight >= s.member.maxInFlight) continue;
      s.inFlight++;
      if (s.inFlight < s.member.maxInFlight) {
        s.queued = true;
        this.#ring.push(s);
      }
      return s;
    }
    return undefined;
  }

  /** `d` went out to `slot`. */
  track(d: Delivery, slot: Slot): void {
    slot.deliveries.set(d.event.id, d);
  }

  /** `d` is no longer in flight at `slot`: the capacity returns. */
  untrack(d: Delivery, slot: Slot): void {
    slot.deliveries.delete(d.event.id);
    slot.inFlight--;
    this.#offer(slot);
  }

  #offer(slot: Slot): void {
    if (slot.gone || !slot.active || slot.queued || slot.inFlight >= slot.member.maxInFlight) return;
    slot.queued = true;
    this.#ring.push(slot);
    this.#scheduleFeed();
  }

  /** `gp` has ready deliveries and no member took them: it waits its turn. */
  starve(gp: GroupPartition): void {
    if (gp.hungry) return;
    gp.hungry = true;
    this.#hungry.push(gp);
  }

  /** Partitions that waited for capacity go first; `gp` queues behind them. */
  mayDispatch(gp: GroupPartition): boolean {
    if (this.#hungry.length === 0 || this.#feeding === gp) return true;
    this.starve(gp);
    this.#scheduleFeed();
    return false;
  }

  // Deferred to a microtask so capacity freed inside a partition's own call
  // stack never re-enters another partition.
  #scheduleFeed(): void {
    if (this.#feedScheduled || this.#hungry.length === 0) return;
    this.#feedScheduled = true;
    queueMicrotask(() => {
      this.#feedScheduled = false;
      for (let n = this.#hungry.length; n > 0 && this.#ring.length > 0; n--) {
        const gp = this.#hungry.shift() as GroupPartition;
        gp.hungry = false;
        this.#feeding = gp;
        try {
          gp.pump();
        } finally {
          this.#feeding = undefined;
        }
      }
    });
  }

  /** Settles a delivery held by `slot` (and only by it). */
  ack(slot: Slot, eventId: string): boolean {
    const d = slot.deliveries.get(eventId);
    return d ? d.partition.ack(d) : false;
  }

  nack(slot: Slot, eventId: string, delayMs: number | undefined): boolean {
    const d = slot.deliveries.get(eventId);
    return d ? d.partition.nack(d, delayMs, 'nacked') : false;
  }

  async flush(): Promise<void> {
    await Promise.all([...this.#partitions.values()].map((gp) => gp.flush()));
  }
}
