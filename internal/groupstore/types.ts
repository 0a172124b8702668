import { HubError } from '../errors/index.js';
import type { LogEvent } from '../eventlog/index.js';

/**
 * Why a group store refused or failed a call. `STORAGE_FAILED`: the database
 * failed (marked `retryable` when retrying may succeed).
 */
export type GroupStoreErrorCode = 'INVALID_ARGUMENT' | 'INCONSISTENT' | 'STORAGE_FAILED';

/** Raised by {@link GroupStore} adapters: arguments no store could accept, or state that broke an invariant. */
export class GroupStoreError extends HubError<GroupStoreErrorCode> {}

/** A registered consumer group. */
export interface GroupRecord {
  readonly name: string;
  /** The topic filter every member of the group uses. */
  readonly filter: string;
  /**
   * Tags every event the group consumes carries (sorted, without repeats); absent when the
   * group takes every event of its filter. Fixed when the group is created, like the filter.
   */
  readonly tags?: readonly string[];
  readonly createdAt: Date;
  /**
   * Where the group started, per partition: the cursor of a partition that has
   * none saved yet (0 for partitions not listed). Fixed when the group is created.
   */
  readonly start: ReadonlyMap<number, number>;
}

/** What a partition's new owner needs to continue delivery counts where the previous owners left them. */
export interface DeliveryState {
  /** Every event of the partition up to this sequence may have been delivered already. */
  readonly deliveredUpTo: number;
  /** Deliveries recorded per event id (events after the requested sequence only). */
  readonly counts: ReadonlyMap<string, number>;
}

/** A group event that exhausted its deliveries. */
export interface DeadLetter {
  group: string;
  event: LogEvent;
  deliveries: number;
  reason: string;
  status: 'dead' | 'replay' | 'replayed';
  deadAt: Date;
}

/**
 * Durable state of consumer groups: the registry (name -> filter), one cursor
 * per group partition (fenced by the group lease epoch) and dead letters.
 *
 * Invariants every adapter keeps (checked by the contract suite in
 * test/contract/groups.ts):
 * - `register` is insert-if-absent: the first filter, tags and start positions
 *   recorded for a group win and every later call returns that record unchanged.
 * - A partition's cursor is its last saved value, else the group's start
 *   position for it, else 0.
 * - A cursor save with an epoch below the stored one changes nothing and
 *   returns false (the caller is fenced); a cursor never exists without a save.
 * - The delivered mark of a partition only grows and is fenced like the cursor;
 *   recorded delivery counts only grow.
 * - Dead letters move dead -> replay (requestReplay) -> replayed (takeReplays)
 *   -> deleted (acked) or dead again; a replay is taken at most once.
 * - Reads return copies: mutating a result never changes the store.
 * - `deleteGroup` removes the registry entry first (the group stops being
 *   listed at once), then its cursors, delivery counts and dead letters; a later
 *   `register` of the name starts a new group from its own start positions.
 */
export interface GroupStore {
  /**
   * Records the group with `filter`, its `start` positions and `tags` (none or empty: every
   * event of the filter) unless it exists; returns the stored record (whose filter, tags and
   * start may differ).
   */
  register(group: string, filter: string, start?: ReadonlyMap<number, number>, tags?: readonly string[]): Promise<GroupRecord>;
  /** Registered groups by name, at most `limit`. */
  listGroups(limit: number): Promise<GroupRecord[]>;
  /** The registered group `group`, or null when there is none (one lookup by name). */
  getGroup(group: string): Promise<GroupRecord | null>;
  /** The acked prefix of one partition (the start position, or 0, when never saved). */
  loadCursor(group: string, partition: number): Promise<number>;
  /** The cursor of every partition with a saved cursor or a start position (index-backed queries). */
  loadCursors(group: string): Promise<Map<number, number>>;
  /** Saves the acked prefix; false when a newer epoch owns the cursor (we are fenced). */
  saveCursor(group: string, partition: number, seq: number, epoch: number): Promise<boolean>;
  /**
   * Records, before they are sent, that events of a partition up to `seq` may be
   * delivered (the mark only grows); false when a newer epoch owns the partition.
   */
  markDelivered(group: string, partition: number, seq: number, epoch: number): Promise<boolean>;
  /** Records that an event has been delivered `deliveries` times so far (a count never decreases). */
  recordDeliveries(group: string, partition: number, eventId: string, seq: number, deliveries: number): Promise<void>;
  /** The delivered mark and the counts recorded for events after `afterSeq`. */
  loadDeliveries(group: string, partition: number, afterSeq: number): Promise<DeliveryState>;
  /** Drops the counts recorded for events up to `seq` (settled: behind the cursor). */
  forgetDeliveries(group: string, partition: number, seq: number): Promise<void>;
  deadLetter(group: string, event: LogEvent, deliveries: number, reason: string): Promise<void>;
  /** Dead letters waiting for an operator (dead or replay requested), oldest first. */
  listDeadLetters(group: string, limit: number): Promise<DeadLetter[]>;
  /** How many dead letters {@link listDeadLetters} would return without a limit. */
  countDeadLetters(group: string): Promise<number>;
  /** Asks the partition's owner to deliver a dead letter again. False when there is no such dead letter. */
  requestReplay(group: string, eventId: string): Promise<boolean>;
  /** Replays requested for one partition, marked as taken. */
  takeReplays(group: string, partition: number, limit: number): Promise<DeadLetter[]>;
  resolveReplay(group: string, eventId: string, acked: boolean): Promise<void>;
  /**
   * Forgets a group and all its state. False when no such group is registered
   * (its leftover state, if any, is removed all the same). Callers make sure no
   * consumer is active: a member still running would write cursors again.
   */
  deleteGroup(group: string): Promise<boolean>;
}

/** Longest dead-letter reason kept, in characters. */
export const MAX_REASON_LENGTH = 2000;

/** Most tags a group may ask events for (the protocol's bound for a subscription). */
export const MAX_GROUP_TAGS = 16;

/** A group's tags as stored and compared: strings, sorted, without repeats; refused past the bound. */
export function normalTags(tags: readonly string[]): string[] {
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string' && t.length > 0 && t.length <= 64))
    throw new GroupStoreError('INVALID_ARGUMENT', 'tags must be non-empty strings of at most 64 characters');
  const out = [...new Set<string>(tags)].sort();
  if (out.length > MAX_GROUP_TAGS) throw new GroupStoreError('INVALID_ARGUMENT', `at most ${MAX_GROUP_TAGS} tags per group`);
  return out;
}

/** Checks start positions (partition -> sequence). */
export function checkStart(start: ReadonlyMap<number, number>): void {
  for (const [p, seq] of start) checkCursor(p, seq, 0);
}

/** Checks the arguments every adapter shares, so both refuse the same calls. */
export function checkCursor(partition: number, seq: number, epoch: number): void {
  if (!Number.isSafeInteger(partition) || partition < 0) throw new GroupStoreError('INVALID_ARGUMENT', `bad partition ${partition}`);
  if (!Number.isSafeInteger(seq) || seq < 0) throw new GroupStoreError('INVALID_ARGUMENT', `bad sequence ${seq}`);
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw new GroupStoreError('INVALID_ARGUMENT', `bad epoch ${epoch}`);
}
