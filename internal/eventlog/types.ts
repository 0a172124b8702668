/** What the drainer appends: an outbox message with its original creation time. */
export interface EventInput {
  id: string;
  topic: string;
  key: string | null;
  payload: unknown;
  headers: Record<string, string>;
  createdAt: Date;
}

/** An event in the log. */
export interface LogEvent extends EventInput {
  partition: number;
  /** Gap-free, 1-based, per partition. */
  seq: number;
  publishedAt: Date;
}

/** Result of {@link EventLog.append}. */
export interface AppendResult {
  /** Events this call appended, in order. */
  appended: LogEvent[];
  /** Ids that were already in the log (appended earlier, e.g. by a holder that died before marking). */
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

/** Head sequence and fence epoch of a partition. */
export interface PartitionHead {
  seq: number;
  epoch: number;
}

/** The event log port. See the package index for invariants. */
export interface EventLog {
  /** Raises the fence of `partition` to `epoch` and returns the head sequence. Throws `FENCED` when a newer epoch already claimed it. */
  claim(partition: number, epoch: number): Promise<number>;
  /** Appends `events` in order under `epoch`. Throws `FENCED` when a newer epoch has claimed the partition. */
  append(partition: number, epoch: number, events: readonly EventInput[]): Promise<AppendResult>;
  read(range: ReadRange): Promise<LogEvent[]>;
  /**
   * Events of several partitions after the given sequences, ordered by
   * (partition, seq), at most `limit` in all: one query for a tailing reader.
   */
  readAfter(positions: ReadonlyMap<number, number>, limit: number): Promise<LogEvent[]>;
  head(partition: number): Promise<PartitionHead>;
  /** The latest event of `topic` with `key`, or null. */
  latestByKey(topic: string, key: string): Promise<LogEvent | null>;
  get(id: string): Promise<LogEvent | null>;
}
