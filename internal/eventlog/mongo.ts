import type { Collection, Db } from 'mongodb';
import { ensureIndexes, isDuplicateKeyError } from '../mongo/index.js';
import { EventLogError } from './errors.js';
import type { AppendResult, EventInput, EventLog, LogEvent, PartitionHead, ReadRange } from './types.js';

interface EventDocument {
  _id: string;
  topic: string;
  key: string | null;
  partition: number;
  seq: number;
  epoch: number;
  payload: unknown;
  headers: Record<string, string>;
  createdAt: Date;
  publishedAt: Date;
}

interface HeadDocument {
  _id: number;
  seq: number;
  epoch: number;
}

/** Collection names used by {@link MongoEventLog}. */
export interface EventCollections {
  events: string;
  heads: string;
}

/** Default collection names. */
export const DEFAULT_EVENT_COLLECTIONS: Readonly<EventCollections> = Object.freeze({ events: 'events', heads: 'event_heads' });

/** Index set of the events collection. */
export const EVENT_INDEXES = [
  { key: { partition: 1, seq: 1 }, name: 'partition_seq', unique: true },
  { key: { topic: 1, partition: 1, seq: 1 }, name: 'topic_partition_seq' },
  { key: { topic: 1, key: 1, seq: -1 }, name: 'topic_key_seq' },
] as const;

/** Idempotent start-up migration for the event log. */
export async function migrateEventLog(db: Db, names: EventCollections = DEFAULT_EVENT_COLLECTIONS): Promise<void> {
  await ensureIndexes(db, names.events, EVENT_INDEXES.map((i) => ({ ...i, key: { ...i.key } })));
  await ensureIndexes(db, names.heads, []);
}

/** Bound on conflict retries within one append (each one follows a fenced writer's leftovers). */
const MAX_APPEND_ATTEMPTS = 5;

function toEvent(d: EventDocument): LogEvent {
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
  };
}

/**
 * {@link EventLog} on MongoDB without multi-document transactions, so it runs on
 * any MongoDB-wire server.
 *
 * Commit protocol per append (holder of epoch E, committed head S):
 * 1. insert the events at seq S+1..S+n (unique on (partition, seq) and on _id);
 * 2. commit by moving the head from (E, S) to (E, S+n) in one conditional update.
 * Events above the head are invisible to readers. A writer fenced between 1 and
 * 2 leaves such orphans; `claim` and the conflict path delete everything above
 * the committed head before writing, so orphans never become visible.
 */
export class MongoEventLog implements EventLog {
  readonly #events: Collection<EventDocument>;
  readonly #heads: Collection<HeadDocument>;
  /** Heads this process holds, by partition: saves a read per append. */
  readonly #held = new Map<number, PartitionHead>();

  constructor(db: Db, names: EventCollections = DEFAULT_EVENT_COLLECTIONS) {
    this.#events = db.collection<EventDocument>(names.events);
    this.#heads = db.collection<HeadDocument>(names.heads);
  }

  async claim(partition: number, epoch: number): Promise<number> {
    if (!Number.isSafeInteger(epoch) || epoch < 1) throw new EventLogError('INVALID_EPOCH', `epoch must be a positive integer, got ${epoch}`);
    this.#held.delete(partition);
    let head: HeadDocument | null;
    try {
      head = await this.#heads.findOneAndUpdate(
        { _id: partition, epoch: { $lte: epoch } },
        { $set: { epoch }, $setOnInsert: { seq: 0 } },
        { upsert: true, returnDocument: 'after' },
      );
    } catch (err) {
      if (isDuplicateKeyError(err)) throw this.#fenced(partition, epoch);
      throw err;
    }
    if (!head) throw this.#fenced(partition, epoch);
    await this.#events.deleteMany({ partition, seq: { $gt: head.seq } });
    this.#held.set(partition, { epoch, seq: head.seq });
    return head.seq;
  }

  async append(partition: number, epoch: number, input: readonly EventInput[]): Promise<AppendResult> {
    let held = this.#held.get(partition);
    if (!held || held.epoch !== epoch) {
      await this.claim(partition, epoch);
      held = this.#held.get(partition) as PartitionHead;
    }
    let pending = [...input];
    const duplicates: string[] = [];
    for (let attempt = 0; attempt < MAX_APPEND_ATTEMPTS; attempt++) {
      if (pending.length === 0) return { appended: [], duplicates, head: held.seq };
      const base = held.seq;
      const publishedAt = new Date();
      const docs: EventDocument[] = pending.map((e, i) => ({
        _id: e.id,
        topic: e.topic,
        key: e.key,
        partition,
        seq: base + 1 + i,
        epoch,
        payload: e.payload,
        headers: e.headers,
        createdAt: e.createdAt,
        publishedAt,
      }));
      try {
        await this.#events.insertMany(docs, { ordered: true });
      } catch (err) {
        if (!isDuplicateKeyError(err)) throw err;
        pending = await this.#resolveConflict(partition, epoch, base, pending, duplicates);
        continue;
      }
      const r = await this.#heads.updateOne({ _id: partition, epoch, seq: base }, { $set: { seq: base + docs.length } });
      if (r.matchedCount === 0) {
        this.#held.delete(partition);
        throw this.#fenced(partition, epoch);
      }
      held.seq = base + docs.length;
      return { appended: docs.map(toEvent), duplicates, head: held.seq };
    }
    throw new EventLogError('CONFLICT', `append to partition ${partition} kept conflicting after ${MAX_APPEND_ATTEMPTS} attempts`);
  }

  /**
   * After a duplicate key: separate ids already committed from our own partial
   * insert and a fenced writer's orphans, delete everything above the head, and
   * confirm we still hold the fence.
   */
  async #resolveConflict(partition: number, epoch: number, base: number, pending: EventInput[], duplicates: string[]): Promise<EventInput[]> {
    const ids = pending.map((e) => e.id);
    const existing = await this.#events.find({ _id: { $in: ids } }, { projection: { _id: 1, partition: 1, seq: 1 } }).toArray();
    const committed = new Set(existing.filter((d) => d.partition !== partition || d.seq <= base).map((d) => d._id));
    await this.#events.deleteMany({ partition, seq: { $gt: base } });
    const head = await this.#heads.findOne({ _id: partition });
    if (!head || head.epoch !== epoch || head.seq !== base) {
      this.#held.delete(partition);
      throw this.#fenced(partition, epoch);
    }
    for (const id of committed) duplicates.push(id);
    return pending.filter((e) => !committed.has(e.id));
  }

  async read(range: ReadRange): Promise<LogEvent[]> {
    const after = range.afterSeq ?? 0;
    if (!Number.isSafeInteger(range.partition) || range.partition < 0) throw new EventLogError('INVALID_RANGE', 'partition must be a non-negative integer');
    if (!Number.isSafeInteger(after) || after < 0) throw new EventLogError('INVALID_RANGE', 'afterSeq must be a non-negative integer');
    if (!Number.isSafeInteger(range.limit) || range.limit < 1 || range.limit > 10_000) throw new EventLogError('INVALID_RANGE', 'limit must be 1-10000');
    const head = await this.head(range.partition);
    if (head.seq <= after) return [];
    const filter = { ...(range.topic === undefined ? {} : { topic: range.topic }), partition: range.partition, seq: { $gt: after, $lte: head.seq } };
    const docs = await this.#events.find(filter, { sort: { seq: 1 }, limit: range.limit }).toArray();
    return docs.map(toEvent);
  }

  async head(partition: number): Promise<PartitionHead> {
    const h = await this.#heads.findOne({ _id: partition });
    return { seq: h?.seq ?? 0, epoch: h?.epoch ?? 0 };
  }

  async latestByKey(topic: string, key: string): Promise<LogEvent | null> {
    // Orphans above a head are rare and short-lived; a few candidates always suffice.
    const candidates = await this.#events.find({ topic, key }, { sort: { seq: -1 }, limit: 8 }).toArray();
    const first = candidates[0];
    if (!first) return null;
    const head = await this.head(first.partition);
    const committed = candidates.find((d) => d.partition === first.partition && d.seq <= head.seq);
    return committed ? toEvent(committed) : null;
  }

  async get(id: string): Promise<LogEvent | null> {
    const d = await this.#events.findOne({ _id: id });
    if (!d) return null;
    const head = await this.head(d.partition);
    return d.seq <= head.seq ? toEvent(d) : null;
  }

  #fenced(partition: number, epoch: number): EventLogError {
    return new EventLogError('FENCED', `partition ${partition} is fenced above epoch ${epoch}`);
  }
}
