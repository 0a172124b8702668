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
  gap?: true;
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
}

/** Default collection names. */
export const DEFAULT_EVENT_COLLECTIONS: Readonly<EventCollections> = Object.freeze({
  events: 'events',
  fences: 'event_fences',
  stalls: 'event_stalls',
});

/** Index set of the events collection. */
export const EVENT_INDEXES = [
  { key: { partition: 1, seq: 1 }, name: 'partition_seq', unique: true },
  { key: { topic: 1, partition: 1, seq: 1 }, name: 'topic_partition_seq' },
  { key: { topic: 1, key: 1, seq: -1 }, name: 'topic_key_seq' },
] as const;

/** Idempotent start-up migration for the event log. */
export async function migrateEventLog(db: Db, names: Partial<EventCollections> = {}): Promise<void> {
  const n = { ...DEFAULT_EVENT_COLLECTIONS, ...names };
  await ensureCollections(db, [
    { name: n.events, indexes: EVENT_INDEXES.map((i) => ({ ...i, key: { ...i.key } })) },
    { name: n.fences, indexes: [] },
    { name: n.stalls, indexes: [] },
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
    ...(d.gap ? { gap: true as const } : {}),
  };
}
