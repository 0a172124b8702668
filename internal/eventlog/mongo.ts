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

interface FenceDocument {
  _id: number;
  epoch: number;
}

/** Collection names used by {@link MongoEventLog}. */
export interface EventCollections {
  events: string;
  /** One fence document per partition: the highest epoch that claimed it. */
  fences: string;
}

/** Default collection names. */
export const DEFAULT_EVENT_COLLECTIONS: Readonly<EventCollections> = Object.freeze({ events: 'events', fences: 'event_fences' });

/** Index set of the events collection. */
export const EVENT_INDEXES = [
  { key: { partition: 1, seq: 1 }, name: 'partition_seq', unique: true },
  { key: { topic: 1, partition: 1, seq: 1 }, name: 'topic_partition_seq' },
  { key: { topic: 1, key: 1, seq: -1 }, name: 'topic_key_seq' },
] as const;

/** Idempotent start-up migration for the event log. */
export async function migrateEventLog(db: Db, names: EventCollections = DEFAULT_EVENT_COLLECTIONS): Promise<void> {
  await ensureIndexes(
    db,
    names.events,
    EVENT_INDEXES.map((i) => ({ ...i, key: { ...i.key } })),
  );
  await ensureIndexes(db, names.fences, []);
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
 * any MongoDB-wire server (FerretDB included).
 *
 * Safety rests on two unique indexes, which every such server enforces
 * atomically: `_id` (a message is in the log at most once) and
 * `(partition, seq)` (one event per slot). A writer inserts at head+1.. in one
 * ordered insert, so what lands is always a contiguous prefix: the log stays
 * gap-free whatever crashes. A writer that loses a race gets a duplicate-key
 * error, re-reads the head, drops ids already present and retries.
 *
 * Fencing: `claim` raises the partition's fence epoch; `append` checks it
 * before writing and refuses with `FENCED` when a newer epoch has claimed.
 * On MongoDB the fence update is an atomic compare-and-set; on servers whose
 * read-modify-write is not atomic (FerretDB 1.x) fencing is best-effort and the
 * unique indexes alone keep exactly-once, order and gap-free sequences.
 */
export class MongoEventLog implements EventLog {
  readonly #events: Collection<EventDocument>;
  readonly #fences: Collection<FenceDocument>;
  /** Last head this process wrote per partition: saves a read per append (never ahead of the truth). */
  readonly #heads = new Map<number, number>();

  constructor(db: Db, names: EventCollections = DEFAULT_EVENT_COLLECTIONS) {
    this.#events = db.collection<EventDocument>(names.events);
    this.#fences = db.collection<FenceDocument>(names.fences);
  }

  async claim(partition: number, epoch: number): Promise<number> {
    if (!Number.isSafeInteger(epoch) || epoch < 1)
      throw new EventLogError('INVALID_EPOCH', `epoch must be a positive integer, got ${epoch}`);
    try {
      const fence = await this.#fences.findOneAndUpdate(
        { _id: partition, epoch: { $lte: epoch } },
        { $set: { epoch } },
        { upsert: true, returnDocument: 'after' },
      );
      if (!fence || fence.epoch !== epoch) throw this.#fenced(partition, epoch);
    } catch (err) {
      if (isDuplicateKeyError(err)) throw this.#fenced(partition, epoch);
      throw err;
    }
    const head = await this.#maxSeq(partition);
    this.#heads.set(partition, head);
    return head;
  }

  async append(partition: number, epoch: number, input: readonly EventInput[]): Promise<AppendResult> {
    await this.#assertFence(partition, epoch);
    let pending = [...input];
    const appended: LogEvent[] = [];
    const duplicates: string[] = [];
    let base = this.#heads.get(partition) ?? (await this.#maxSeq(partition));
    for (let attempt = 0; attempt < MAX_APPEND_ATTEMPTS && pending.length > 0; attempt++) {
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
        appended.push(...docs.map(toEvent));
        base += docs.length;
        this.#heads.set(partition, base);
        return { appended, duplicates, head: base };
      } catch (err) {
        this.#heads.delete(partition);
        if (!isDuplicateKeyError(err)) throw err;
      }
      // Lost a race (or hit ids already in): our insert landed a prefix. Sort what is
      // present into ours and others', re-read the head and go on with the rest.
      const present = await this.#events
        .find({ _id: { $in: pending.map((e) => e.id) } }, { projection: { _id: 1, seq: 1, publishedAt: 1 } })
        .toArray();
      const mine = new Map(docs.map((d) => [d._id, d]));
      for (const p of present) {
        const d = mine.get(p._id);
        if (d && p.seq === d.seq && p.publishedAt.getTime() === publishedAt.getTime()) appended.push(toEvent(d));
        else duplicates.push(p._id);
      }
      const done = new Set(present.map((p) => p._id));
      pending = pending.filter((e) => !done.has(e.id));
      base = await this.#maxSeq(partition);
      if (pending.length > 0) await this.#assertFence(partition, epoch);
    }
    if (pending.length > 0) {
      throw new EventLogError('CONFLICT', `append to partition ${partition} kept conflicting after ${MAX_APPEND_ATTEMPTS} attempts`);
    }
    this.#heads.set(partition, base);
    return { appended, duplicates, head: base };
  }

  async read(range: ReadRange): Promise<LogEvent[]> {
    const after = range.afterSeq ?? 0;
    if (!Number.isSafeInteger(range.partition) || range.partition < 0)
      throw new EventLogError('INVALID_RANGE', 'partition must be a non-negative integer');
    if (!Number.isSafeInteger(after) || after < 0) throw new EventLogError('INVALID_RANGE', 'afterSeq must be a non-negative integer');
    if (!Number.isSafeInteger(range.limit) || range.limit < 1 || range.limit > 10_000)
      throw new EventLogError('INVALID_RANGE', 'limit must be 1-10000');
    const filter = { ...(range.topic === undefined ? {} : { topic: range.topic }), partition: range.partition, seq: { $gt: after } };
    const docs = await this.#events.find(filter, { sort: { seq: 1 }, limit: range.limit }).toArray();
    return docs.map(toEvent);
  }

  async readAfter(positions: ReadonlyMap<number, number>, limit: number): Promise<LogEvent[]> {
    if (positions.size === 0) return [];
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 10_000) throw new EventLogError('INVALID_RANGE', 'limit must be 1-10000');
    const clauses = [...positions].map(([partition, after]) => ({ partition, seq: { $gt: after } }));
    const docs = await this.#events
      .find(clauses.length === 1 ? (clauses[0] as object) : { $or: clauses }, { sort: { partition: 1, seq: 1 }, limit })
      .toArray();
    return docs.map(toEvent);
  }

  async head(partition: number): Promise<PartitionHead> {
    const [seq, fence] = await Promise.all([this.#maxSeq(partition), this.#fences.findOne({ _id: partition })]);
    return { seq, epoch: fence?.epoch ?? 0 };
  }

  async latestByKey(topic: string, key: string): Promise<LogEvent | null> {
    const d = await this.#events.findOne({ topic, key }, { sort: { seq: -1 } });
    return d ? toEvent(d) : null;
  }

  async get(id: string): Promise<LogEvent | null> {
    const d = await this.#events.findOne({ _id: id });
    return d ? toEvent(d) : null;
  }

  async #maxSeq(partition: number): Promise<number> {
    const last = await this.#events.findOne({ partition }, { sort: { seq: -1 }, projection: { seq: 1 } });
    return last?.seq ?? 0;
  }

  async #assertFence(partition: number, epoch: number): Promise<void> {
    const fence = await this.#fences.findOne({ _id: partition });
    if ((fence?.epoch ?? 0) > epoch) {
      this.#heads.delete(partition);
      throw this.#fenced(partition, epoch);
    }
  }

  #fenced(partition: number, epoch: number): EventLogError {
    return new EventLogError('FENCED', `partition ${partition} is fenced above epoch ${epoch}`);
  }
}
