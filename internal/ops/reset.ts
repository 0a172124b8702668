import { randomBytes } from 'node:crypto';
import type { EventReader } from '../eventlog/index.js';
import { groupLeaseGroup, type GroupStore } from '../groupstore/index.js';
import type { Lease, LeaseStore } from '../lease/index.js';
import { OpsError } from './params.js';

/** Where a reset moves a group: before everything retained, to the head, or to the first event at or after a time. */
export type ResetTarget = 'earliest' | 'latest' | Date;

/** One partition of a reset group. */
export interface ResetPartition {
  partition: number;
  /** The cursor before the reset. */
  previous: number;
  /** The cursor now: the group's next delivery in this partition is the event after it. */
  cursor: number;
  /** True when a gateway held the partition and was fenced out (a forced reset) rather than waited for. */
  fenced: boolean;
}

/** What a reset did, or why it did nothing. */
export type ResetOutcome =
  { outcome: 'absent' } | { outcome: 'active'; members: string[]; held: number[] } | { outcome: 'reset'; partitions: ResetPartition[] };

/** Partitions handled at the same time: each costs a few round trips, and P may be 4096. */
const CONCURRENCY = 16;
/**
 * How long a reset holds a partition's lease: it releases it as soon as the
 * cursor is written, so this only bounds how long a crashed ops keeps gateways out.
 */
const RESET_LEASE_TTL_MS = 15_000;
/** Rounds of "raise the cursor's epoch above the lease's" before giving up on a partition whose lease keeps changing hands. */
const MAX_FENCE_ROUNDS = 5;

/** The ports a reset works through. */
export interface ResetPorts {
  readonly groupStore: GroupStore;
  readonly leases: LeaseStore;
  readonly eventLog: Pick<EventReader, 'head' | 'seqBefore'>;
}

async function inChunks<T, R>(items: readonly T[], f: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += CONCURRENCY) out.push(...(await Promise.all(items.slice(i, i + CONCURRENCY).map(f))));
  return out;
}

/**
 * Moves a consumer group's cursors to a position in every partition, fenced
 * like every cursor write (the cursor's epoch is the group lease's):
 *
 * - A partition nobody holds: the reset takes its group lease through the
 *   LeaseStore (so no gateway can take it meanwhile), writes the cursor under
 *   that lease's epoch and releases it; the next gateway to take it gets a
 *   higher epoch and loads the new cursor.
 * - A partition a gateway holds (only with `force`: without it the reset is
 *   refused while the group has members, and undone if a lease is held): the
 *   cursor is written under the holder's epoch + 1. The holder's next cursor
 *   or delivered-mark write is refused, so it drops the partition and lets its
 *   lease lapse (as on any fencing), and whoever takes the lease next (at that
 *   epoch or above) starts from the new cursor. If the lease changed hands
 *   while the cursor was written (a new owner may have loaded the old cursor),
 *   the write is repeated above the new epoch. Until the holder's next write,
 *   it may deliver what it had read already: a forced reset is at least once.
 *
 * Cost: per partition, one position lookup (index-backed) and a few lease and
 * cursor writes, {@link CONCURRENCY} partitions at a time.
 */
export class GroupReset {
  readonly #p: ResetPorts;
  readonly #partitions: number;

  constructor(ports: ResetPorts, partitions: number) {
    this.#p = ports;
    this.#partitions = partitions;
  }

  /** The cursor that makes the next delivery of `partition` the first event at `target`. */
  async position(partition: number, target: ResetTarget): Promise<number> {
    if (target === 'earliest') return 0;
    if (target === 'latest') return (await this.#p.eventLog.head(partition)).seq;
    return this.#p.eventLog.seqBefore(partition, target);
  }

  /** Per partition, the sequence of the last event published before `at` (0: none). */
  positionsAt(at: Date): Promise<number[]> {
    return inChunks(this.#all(), (p) => this.#p.eventLog.seqBefore(p, at));
  }

  async reset(group: string, target: ResetTarget, force: boolean): Promise<ResetOutcome> {
    const { groupStore, leases } = this.#p;
    if (!(await groupStore.getGroup(group))) return { outcome: 'absent' };
    const leaseGroup = groupLeaseGroup(group);
    const members = await leases.members(leaseGroup);
    if (members.length > 0 && !force) return { outcome: 'active', members: members.map((m) => m.member), held: [] };
    const [previous, cursors] = await Promise.all([groupStore.loadCursors(group), inChunks(this.#all(), (p) => this.position(p, target))]);
    const holder = `ops-reset-${randomBytes(4).toString('hex')}`;
    // Every free partition's lease first: a partition some gateway holds makes an unforced reset change nothing.
    const taken = await inChunks(this.#all(), (p) => leases.acquire(leaseGroup, p, holder, RESET_LEASE_TTL_MS));
    const held = this.#all().filter((p) => !taken[p]);
    try {
      if (held.length > 0 && !force) return { outcome: 'active', members: members.map((m) => m.member), held };
      const partitions = await inChunks(this.#all(), async (p): Promise<ResetPartition> => {
        const cursor = cursors[p] ?? 0;
        const lease = taken[p];
        const written = lease ? await groupStore.saveCursor(group, p, cursor, lease.epoch) : false;
        // Written under our own lease, or (held, or a cursor already above our epoch) fenced above the holder.
        if (!written) await this.#fenceAbove(group, p, cursor);
        return { partition: p, previous: previous.get(p) ?? 0, cursor, fenced: !written };
      });
      return { outcome: 'reset', partitions };
    } finally {
      await Promise.all(taken.filter((l): l is Lease => l !== null).map((l) => leases.release(l)));
    }
  }

  /** Writes the cursor above the partition's current lease epoch until that epoch stays put across the write. */
  async #fenceAbove(group: string, partition: number, cursor: number): Promise<void> {
    const epochOf = async (): Promise<number> =>
      (await this.#p.leases.list(groupLeaseGroup(group))).find((l) => l.partition === partition)?.epoch ?? 0;
    let epoch = await epochOf();
    for (let round = 0; round < MAX_FENCE_ROUNDS; round++) {
      // Refused only when the stored epoch is higher still (another reset got there first): go above that too.
      if (!(await this.#p.groupStore.saveCursor(group, partition, cursor, epoch + 1))) {
        epoch++;
        continue;
      }
      const now = await epochOf();
      if (now <= epoch) return;
      epoch = now;
    }
    throw new OpsError('UNAVAILABLE', 503, `partition ${partition} of group ${group} kept changing hands during the reset; retry`);
  }

  #all(): number[] {
    return Array.from({ length: this.#partitions }, (_, p) => p);
  }
}
