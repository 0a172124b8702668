import type { TopicPattern } from '../topic/index.js';

/** What the drainer appends: an outbox message with its original creation time. */
export interface EventInput {
  id: string;
  topic: string;
  key: string | null;
  payload: unknown;
  headers: Record<string, string>;
  createdAt: Date;
  /**
   * Fingerprint of the message as its writer added it (topic, key, payload, headers,
   * publisher), kept for messages added with their own id: a later add of that id is
   * the same message exactly when the digests are equal.
   */
  digest?: string;
}

/** An event in the log. */
export interface LogEvent extends EventInput {
  partition: number;
  /** Gap-free, 1-based, per partition. */
  seq: number;
  publishedAt: Date;
  /**
   * True for a filler an operator wrote into a sequence hole ({@link EventLog.repairGap}):
   * it carries no message; readers advance past it and deliver nothing.
   */
  gap?: true;
}

/** Result of {@link EventLog.append}. */
export interface AppendResult {
  /** Events this call appended, in order. */
  appended: LogEvent[];
  /** Ids that were already in the log (appended earlier, e.g. by a holder that died before removing them). */
  duplicates: string[];
  /** Head sequence after the append. */
  head: number;
}

/** A range of one partition, after `afterSeq` (exclusive). */
export interface ReadRange {
  partition: number;
  afterSeq?: number;
  limit: number;
  /** Only events of this topic (index-backed). */
  topic?: string;
}

/** Sequences `afterSeq + 1 .. toSeq` of one partition. */
export interface SeqRange {
  afterSeq: number;
  toSeq: number;
}

/** One question for {@link EventLog.countMatching}: which events of these ranges match this filter. */
export interface MatchQuery {
  ranges: ReadonlyMap<number, SeqRange>;
  filter: TopicPattern;
}

/** What {@link EventLog.countMatching} found in one partition's range. */
export interface MatchCount {
  /** Events in the range whose topic matches (gap fillers never do). */
  count: number;
  /** When the first of them (lowest sequence) was appended. */
  firstPublishedAt: Date;
}

/** Head sequence and fence epoch of a partition. */
export interface PartitionHead {
  seq: number;
  epoch: number;
}

/** A run of missing sequence numbers in one partition: `from..to`, both included. */
export interface SequenceGap {
  partition: number;
  from: number;
  to: number;
  /** When the first event after the gap was appended. */
  nextPublishedAt: Date;
}

/** A reader's report that a partition has not advanced past a missing sequence. */
export interface StallReport {
  partition: number;
  /** The first sequence the reader is waiting for. */
  seq: number;
  since: Date;
  reporter: string;
  updatedAt: Date;
}

/**
 * The writer's role: the holder of a partition's lease appends under its epoch,
 * fenced by it (the drainer).
 */
export interface EventAppender {
  /**
   * Raises the fence of `partition` to `epoch` and returns the head sequence.
   * Throws `FENCED` when a newer epoch already claimed it. A claim also
   * remembers the partition's most recent events, so the first appends after a
   * takeover recognise messages the previous holder appended but did not remove.
   */
  claim(partition: number, epoch: number): Promise<number>;
  /**
   * Appends `events` in order under `epoch` after the partition's head.
   * Ids already in the log are reported as duplicates, never appended twice.
   * Throws `FENCED` when a newer epoch has claimed the partition.
   */
  append(partition: number, epoch: number, events: readonly EventInput[]): Promise<AppendResult>;
  /** Throws `FENCED` when an epoch newer than `epoch` has claimed `partition`. */
  checkFence(partition: number, epoch: number): Promise<void>;
}

/** The readers' role: range reads, heads, lookups and wake-ups (tails, groups, ops, the outbox's id checks). */
export interface EventReader {
  read(range: ReadRange): Promise<LogEvent[]>;
  /**
   * Events of several partitions after the given sequences, ordered by
   * (partition, seq), at most `limit` in all: one query for a tailing reader.
   */
  readAfter(positions: ReadonlyMap<number, number>, limit: number): Promise<LogEvent[]>;
  head(partition: number): Promise<PartitionHead>;
  /**
   * For each query, per partition: how many events of its range match its
   * filter, and when the first of them was appended (consumer groups' lag).
   * All queries are answered from one read of the union of their ranges, so
   * the work is bounded by the ranges' lengths (callers bound them), not by the
   * number of queries. Partitions without a match are left out.
   */
  countMatching(queries: readonly MatchQuery[]): Promise<Array<Map<number, MatchCount>>>;
  /** The latest event of `topic` with `key`, or null. */
  latestByKey(topic: string, key: string): Promise<LogEvent | null>;
  get(id: string): Promise<LogEvent | null>;
  /** Which of `ids` are in the log (index lookups only). */
  present(ids: readonly string[]): Promise<Set<string>>;
  /**
   * Calls `onAppend` when events may have been appended to a partition (a change
   * stream where the server has them). Returns the stop function; the caller
   * decides from the server's capabilities whether to use it.
   */
  watchAppends?(onAppend: (partition: number) => void, onError: (err: unknown) => void): () => Promise<void>;
}

/**
 * Holes: readers report a partition stalled behind a missing sequence; an
 * operator fills the gap so readers can go on (ops).
 */
export interface EventLogRepair {
  /** The missing sequence numbers right after `afterSeq`, if the next event present is not `afterSeq + 1`. */
  findGap(partition: number, afterSeq: number): Promise<SequenceGap | null>;
  /**
   * Fills the gap right after `afterSeq` with filler events so readers can
   * advance. Refuses (`GAP_TOO_RECENT`) while the event after the gap is younger
   * than `minAgeMs`: a write could still be landing. Returns the gap filled, or
   * null when there was none.
   */
  repairGap(partition: number, afterSeq: number, options: { minAgeMs: number }): Promise<SequenceGap | null>;
  /** Records (or refreshes) `reporter`'s stall on `partition`; `null` clears it. */
  reportStall(partition: number, reporter: string, stall: { seq: number; since: Date } | null): Promise<void>;
  /** Current stall reports, oldest first. */
  stalls(): Promise<StallReport[]>;
}

/** The event log port: every role. Consumers depend on the role they use. See the package index for invariants. */
export interface EventLog extends EventAppender, EventReader, EventLogRepair {}
