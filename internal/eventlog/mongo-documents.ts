import type { Db } from 'mongodb';
import { ensureCollections } from '../mongo/index.js';
import type { LogEvent } from './types.js';

/** An event as stored: `_id` is its message id, `(partition, seq)` its slot. */
export interface EventDocument {
  _id: string;
  topic: string;
  key: string | null;
  partition: number;
  seq: number;
  epoch: number;
  /** Nonce of the append call that wrote it: tells a writer its own documents from a racing writer's. */
  w: string;
  payload: unknown;
  headers: Record<string, string>;
  createdAt: Date;
  publishedAt: Date;
  digest?: string;
  causedBy?: string[];
  tags?: string[];
  traceparent?: string;
  tracestate?: string;
  gap?: true;
  /** Set when the payload is null: a tombstone on a compacted topic (what retention scans for, without payloads). */
  tomb?: true;
}

/**
 * One per partition: the highest epoch that claimed it, and the insert its
 * holder has in progress (`next.ids[i]` goes to seq `next.from + i`). Written
 * before every append as the fence check, it lets a claim or a reader find the
 * head and the ids logged by the last append with `_id` lookups only, which
 * every server serves from its index (FerretDB scans for anything else).
 */
export interface FenceDocument {
  _id: number;
  epoch: number;
  next?: { from: number; ids: string[] };
  /** First retained sequence (absent: 1, nothing trimmed). Raised by the holder, before it deletes below it. */
  first?: number;
  /** Events up to this sequence are reflected in the latest-value snapshot (absent: 0). */
  compactedTo?: number;
  /**
   * The highest trimmed sequence whose event carried tags (absent: unknown, taken as
   * `first - 1`; a prefix trimmed before this field existed may have held some).
   */
  taggedTo?: number;
  /**
   * Every event below this sequence is deleted (absent: 1). Deletions start here, not at the
   * partition's beginning: an index range over deleted entries is walked entry by entry
   * until the storage engine cleans them up (4.9 s for one lookup over 400,000 of them).
   */
  trimmedTo?: number;
}

/** The latest event of one key of a compacted topic (`_id`: `<topic>/<key>`; topics hold no `/`). */
export interface LatestDocument extends Omit<EventDocument, '_id' | 'w' | 'epoch'> {
  _id: string;
  /** The event's id. */
  id: string;
  key: string;
}

/** One reader's report of a stalled partition (`_id`: `partition/reporter`). */
export interface StallDocument {
  _id: string;
  partition: number;
  seq: number;
  since: Date;
  reporter: string;
  updatedAt: Date;
}

/** Collection names used by {@link MongoEventLog}. */
export interface EventCollections {
  events: string;
  /** One fence document per partition: the highest epoch that claimed it. */
  fences: string;
  /** Readers' reports of partitions that do not advance past a missing sequence. */
  stalls: string;
  /** The latest event of every key of compacted topics. */
  latest: string;
}

/** Default collection names. */
export const DEFAULT_EVENT_COLLECTIONS: Readonly<EventCollections> = Object.freeze({
  events: 'events',
  fences: 'event_fences',
  stalls: 'event_stalls',
  latest: 'event_latest',
});

/** Index set of the events collection. */
export const EVENT_INDEXES = [
  { key: { partition: 1, seq: 1 }, name: 'partition_seq', unique: true },
  { key: { topic: 1, partition: 1, seq: 1 }, name: 'topic_partition_seq' },
  { key: { topic: 1, key: 1, seq: -1 }, name: 'topic_key_seq' },
  // Time-based positions (`seqBefore`): the last event of a partition before a time, one index seek.
  { key: { partition: 1, publishedAt: 1, seq: 1 }, name: 'partition_publishedAt_seq' },
  // The events caused by one event (ops): multikey over `causedBy`, one entry per cause.
  { key: { causedBy: 1, publishedAt: 1 }, name: 'causedBy_publishedAt' },
] as const;

/** Index set of the latest-value snapshot: reads by topic (filters are prefix-anchored), tombstone purges. */
export const LATEST_INDEXES = [
  { key: { topic: 1, key: 1 }, name: 'topic_key' },
  { key: { partition: 1, tomb: 1, publishedAt: 1 }, name: 'partition_tomb_publishedAt' },
] as const;

/** Idempotent start-up migration for the event log. */
export async function migrateEventLog(db: Db, names: Partial<EventCollections> = {}): Promise<void> {
  const n = { ...DEFAULT_EVENT_COLLECTIONS, ...names };
  await ensureCollections(db, [
    { name: n.events, indexes: EVENT_INDEXES.map((i) => ({ ...i, key: { ...i.key } })) },
    { name: n.fences, indexes: [] },
    { name: n.stalls, indexes: [] },
    { name: n.latest, indexes: LATEST_INDEXES.map((i) => ({ ...i, key: { ...i.key } })) },
  ]);
}

/**
 * Most documents one insert call carries. FerretDB 1.x runs an insert in chunks
 * of 100 (its default batch size) and, after a chunk fails, goes on with the
 * next one: only within a chunk does an ordered insert stop at the first
 * failure. Calls of at most this size land as a contiguous prefix on every
 * server we know.
 */
export const APPEND_CHUNK = 100;

/** An event as readers see it, from its document. */
export function toEvent(d: EventDocument): LogEvent {
  return {
    id: d._id,
    topic: d.topic,
    key: d.key,
    partition: d.partition,
    seq: d.seq,
    payload: d.payload,
    headers: d.headers ?? {},
    createdAt: d.createdAt,
    publishedAt: d.publishedAt,
    ...(d.digest === undefined ? {} : { digest: d.digest }),
    ...eventExtras(d),
    ...(d.gap ? { gap: true as const } : {}),
  };
}

/** The optional fields an event carries from its message (causes, tags, trace context), only where present. */
export function eventExtras(
  e: Pick<EventDocument, 'causedBy' | 'tags' | 'traceparent' | 'tracestate'>,
): Pick<EventDocument, 'causedBy' | 'tags' | 'traceparent' | 'tracestate'> {
  return {
    ...(e.causedBy === undefined ? {} : { causedBy: e.causedBy }),
    ...(e.tags === undefined ? {} : { tags: e.tags }),
    ...(e.traceparent === undefined ? {} : { traceparent: e.traceparent }),
    ...(e.tracestate === undefined ? {} : { tracestate: e.tracestate }),
  };
}

/** A snapshot entry as readers see it: the event it holds. */
export function toLatestEvent(d: LatestDocument): LogEvent {
  return toEvent({ ...d, _id: d.id, w: '', epoch: 0 });
}
