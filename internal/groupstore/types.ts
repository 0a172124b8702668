import { HubError } from '../errors/index.js';
import type { LogEvent } from '../eventlog/index.js';

/** Why a group store refused a call. */
export type GroupStoreErrorCode = 'INVALID_ARGUMENT' | 'INCONSISTENT';

/** Raised by {@link GroupStore} adapters: arguments no store could accept, or state that broke an invariant. */
export class GroupStoreError extends HubError<GroupStoreErrorCode> {}

/** A registered consumer group. */
export interface GroupRecord {
  readonly name: string;
  /** The topic filter every member of the group uses. */
  readonly filter: string;
  readonly createdAt: Date;
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
 * - `register` is insert-if-absent: the first filter recorded for a group wins
 *   and every later call returns that record unchanged.
 * - A cursor save with an epoch below the stored one changes nothing and
 *   returns false (the caller is fenced); a cursor never exists without a save.
 * - Dead letters move dead -> replay (requestReplay) -> replayed (takeReplays)
 *   -> deleted (acked) or dead again; a replay is taken at most once.
 * - Reads return copies: mutating a result never changes the store.
 */
export interface GroupStore {
  /** Records the group with `filter` unless it exists; returns the stored record (whose filter may differ). */
  register(group: string, filter: string): Promise<GroupRecord>;
  /** Registered groups by name, at most `limit`. */
  listGroups(limit: number): Promise<GroupRecord[]>;
  /** The acked prefix of one partition (0 when never saved). */
  loadCursor(group: string, partition: number): Promise<number>;
  /** Every saved cursor of a group, by partition (one index-backed query). */
  loadCursors(group: string): Promise<Map<number, number>>;
  /** Saves the acked prefix; false when a newer epoch owns the cursor (we are fenced). */
  saveCursor(group: string, partition: number, seq: number, epoch: number): Promise<boolean>;
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
}

/** Longest dead-letter reason kept, in characters. */
export const MAX_REASON_LENGTH = 2000;

/** Checks the arguments every adapter shares, so both refuse the same calls. */
export function checkCursor(partition: number, seq: number, epoch: number): void {
  if (!Number.isSafeInteger(partition) || partition < 0) throw new GroupStoreError('INVALID_ARGUMENT', `bad partition ${partition}`);
  if (!Number.isSafeInteger(seq) || seq < 0) throw new GroupStoreError('INVALID_ARGUMENT', `bad sequence ${seq}`);
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw new GroupStoreError('INVALID_ARGUMENT', `bad epoch ${epoch}`);
}
