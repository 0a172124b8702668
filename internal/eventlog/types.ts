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
  /** Ids of the events this one was caused by (absent: none). */
  causedBy?: string[];
  /** Labels subscriptions filter on (absent: none). */
  tags?: string[];
  /**
   * W3C trace context the event continues: the drainer's `append` span's when the drainer
   * traces, else the writer's (absent when the writer carried none).
   */
  traceparent?: string;
  tracestate?: string;
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
  /**
   * No event above this sequence. Readers that know where they stop say so: on a server
   * that keeps deleted index entries around (WiredTiger, after trimming), an open-ended
   * range next to them is slow where a bounded one is not.
   */
  toSeq?: number;
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
  /**
   * Events that name `id` among their causes (`causedBy`), oldest first, at most
   * `limit`: one index range (`causedBy, publishedAt`).
   */
  causedBy(id: string, limit: number): Promise<LogEvent[]>;
  /** Which of `ids` are in the log (index lookups only). */
  present(ids: readonly string[]): Promise<Set<string>>;
  /**
   * The sequence of the last event of `partition` published before `at` (the
   * latest `publishedAt` earlier than `at`, the highest sequence among equal
   * times), or 0 when the partition holds none: reading after it starts at the
   * first event published at or after `at` (time-based positions: replays,
   * group resets). One index-backed lookup (`partition, publishedAt`).
   */
  seqBefore(partition: number, at: Date): Promise<number>;
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

/** What a partition still holds, and how far the latest-value snapshot reflects it. */
export interface PartitionRetention {
  /** The first sequence the log still holds; lower ones were trimmed (1 when nothing was). */
  readonly first: number;
  /** Every event up to this sequence is reflected in the latest-value snapshot (0: none). */
  readonly compactedTo: number;
  /**
   * No event above this sequence that carried tags was trimmed (0: none was): a reader that
   * wants only tagged events and stands at or above it lost nothing to trimming. At most
   * `first - 1`; where not known (a prefix trimmed by a version that did not record it),
   * `first - 1`.
   */
  readonly taggedTo: number;
}

/** What retention decides on: an event without its payload. */
export interface EventMeta {
  readonly seq: number;
  readonly topic: string;
  readonly key: string | null;
  readonly publishedAt: Date;
  /** A `null` payload: on a compacted topic, the key's deletion. */
  readonly tombstone: boolean;
  /** The event's tags (absent: none). */
  readonly tags?: readonly string[];
}

/** What an event weighs in storage (ops' retention figures per partition and topic). */
export interface EventSize {
  readonly seq: number;
  readonly topic: string;
  /** BSON size of the event's stored document, payload included. */
  readonly bytes: number;
  /** A filler written into a hole ({@link EventLogRepair.repairGap}): no topic of its own. */
  readonly gap: boolean;
}

/** Where a page of the latest-value snapshot ended (the next page starts after it). */
export interface SnapshotCursor {
  readonly topic: string;
  readonly key: string;
}

/**
 * Retention: the partition's lease holder trims a prefix under its epoch, and
 * keeps the latest event of every key of compacted topics in a snapshot that
 * outlives the trimmed events (the drainer); readers learn where a partition
 * now starts (tails, groups, replays) and read the snapshot (ops, SUBSCRIBE
 * from `snapshot`).
 */
export interface EventLogRetention {
  /** First retained sequence and snapshot watermark of `partition`. */
  retention(partition: number): Promise<PartitionRetention>;
  /** Events in `(afterSeq, afterSeq + limit]` without their payloads, in order (index-backed; a hole makes it fewer). */
  scan(partition: number, afterSeq: number, limit: number): Promise<EventMeta[]>;
  /**
   * Sequence, topic and stored size of the events in `(afterSeq, afterSeq + limit]`, in
   * order (index-backed; reads the payloads, so callers bound `limit` and how often they ask).
   */
  sizes(partition: number, afterSeq: number, limit: number): Promise<EventSize[]>;
  /**
   * Raises the first retained sequence of `partition` to `first` under `epoch`
   * (never past the first slot of the partition's last append: the sequence
   * continues from there) and deletes what lies below it, at most `maxDelete`
   * events per call (call again to finish). Returns the first sequence now
   * retained and how many events this call deleted. `FENCED` when a newer epoch claimed.
   * `taggedBelow`: the highest sequence below `first` whose event carries tags (0: none),
   * as the caller's scan found it; `taggedTo` is raised to it with `first` (an adapter may
   * raise it further from what it deletes, never lower it).
   */
  trim(
    partition: number,
    epoch: number,
    first: number,
    maxDelete: number,
    taggedBelow?: number,
  ): Promise<{ first: number; deleted: number }>;
  /**
   * Records `events` (compacted topics, keyed, of `partition`) in the latest-value
   * snapshot, where a key keeps the event with its highest sequence, then raises
   * the partition's watermark to `upTo` under `epoch` (`FENCED` when a newer one claimed).
   */
  compact(partition: number, epoch: number, events: readonly LogEvent[], upTo: number): Promise<void>;
  /** Latest values whose topic matches `filter`, by (topic, key), after `after`, at most `limit`. */
  snapshot(filter: TopicPattern, after: SnapshotCursor | undefined, limit: number): Promise<LogEvent[]>;
  /** The latest event of `topic` and `key` in the snapshot, or null. */
  latestValue(topic: string, key: string): Promise<LogEvent | null>;
  /** Removes tombstones of `partition` (latest values with a null payload) published before `before`, at most `limit`. */
  purgeTombstones(partition: number, before: Date, limit: number): Promise<number>;
}

/** The event log port: every role. Consumers depend on the role they use. See the package index for invariants. */
export interface EventLog extends EventAppender, EventReader, EventLogRepair, EventLogRetention {}
