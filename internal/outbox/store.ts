import type { ChangeStream, Collection, Db } from 'mongodb';
import type { OutboxDocument, OutboxStatus } from './message.js';
import { DEFAULT_OUTBOX_COLLECTION } from './outbox.js';

/** A message as the drainer reads it. */
export interface PendingMessage {
  id: string;
  topic: string;
  key: string | null;
  partition: number;
  payload: unknown;
  headers: Record<string, string>;
  createdAt: Date;
  attempts: number;
}

/** A message in any state, as operators see it. */
export interface StoredMessage extends PendingMessage {
  status: OutboxStatus;
  lastError: string | null;
  sentAt: Date | null;
}

/** Backlog of one partition. */
export interface PartitionBacklog {
  pending: number;
  oldestPendingAt: Date | null;
  dead: number;
}

/**
 * The drainer's port onto the outbox.
 *
 * Invariants: `pending` returns a partition's pending messages in write order;
 * `markSent` and `recordFailure` only move messages out of `pending`, so a late
 * call can never resurrect or reorder anything.
 */
export interface OutboxStore {
  pending(partition: number, limit: number): Promise<PendingMessage[]>;
  markSent(ids: readonly string[], at: Date): Promise<number>;
  /** Counts a failed attempt; `dead` moves the message out of the way with its last error. */
  recordFailure(id: string, error: string, dead: boolean): Promise<void>;
  /** Moves dead messages back to pending (attempts reset). Returns how many moved. */
  requeue(ids: readonly string[]): Promise<number>;
  /** Deletes up to `limit` sent messages older than `before`. */
  purgeSent(before: Date, limit: number): Promise<number>;
  backlog(partition: number): Promise<PartitionBacklog>;
  get(id: string): Promise<StoredMessage | null>;
  listDead(partition: number, limit: number): Promise<StoredMessage[]>;
  /**
   * Calls `onPartition` when a message may have become pending. Returns a stop
   * function, or `undefined` when the server has no change streams (poll instead).
   */
  watchPending?(onPartition: (partition: number) => void, onError: (err: unknown) => void): (() => Promise<void>) | undefined;
}

function toStored(d: OutboxDocument): StoredMessage {
  return {
    id: d._id,
    topic: d.topic,
    key: d.key,
    partition: d.partition,
    payload: d.payload,
    headers: d.headers ?? {},
    createdAt: d.createdAt,
    attempts: d.attempts ?? 0,
    status: d.status,
    lastError: d.lastError ?? null,
    sentAt: d.sentAt ?? null,
  };
}

/** {@link OutboxStore} over a MongoDB collection. */
export class MongoOutboxStore implements OutboxStore {
  readonly #c: Collection<OutboxDocument>;
  readonly #changeStreams: boolean;

  constructor(db: Db, options: { collection?: string; changeStreams?: boolean } = {}) {
    this.#c = db.collection<OutboxDocument>(options.collection ?? DEFAULT_OUTBOX_COLLECTION);
    this.#changeStreams = options.changeStreams ?? false;
  }

  async pending(partition: number, limit: number): Promise<PendingMessage[]> {
    const docs = await this.#c
      .find({ partition, status: 'pending' }, { sort: { ts: 1 }, limit })
      .toArray();
    return docs.map(toStored);
  }

  async markSent(ids: readonly string[], at: Date): Promise<number> {
    if (ids.length === 0) return 0;
    const r = await this.#c.updateMany({ _id: { $in: [...ids] }, status: 'pending' }, { $set: { status: 'sent', sentAt: at } });
    return r.modifiedCount;
  }

  async recordFailure(id: string, error: string, dead: boolean): Promise<void> {
    await this.#c.updateOne(
      { _id: id, status: 'pending' },
      { $inc: { attempts: 1 }, $set: { lastError: error.slice(0, 2000), ...(dead ? { status: 'dead' as const } : {}) } },
    );
  }

  async requeue(ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return 0;
    const r = await this.#c.updateMany({ _id: { $in: [...ids] }, status: 'dead' }, { $set: { status: 'pending', attempts: 0 } });
    return r.modifiedCount;
  }

  async purgeSent(before: Date, limit: number): Promise<number> {
    // Bounded batches keep each delete short; the caller loops while it returns `limit`.
    const ids = await this.#c
      .find({ status: 'sent', sentAt: { $lt: before } }, { projection: { _id: 1 }, limit })
      .toArray();
    if (ids.length === 0) return 0;
    const r = await this.#c.deleteMany({ _id: { $in: ids.map((d) => d._id) }, status: 'sent' });
    return r.deletedCount;
  }

  async backlog(partition: number): Promise<PartitionBacklog> {
    const [pending, oldest, dead] = await Promise.all([
      this.#c.countDocuments({ partition, status: 'pending' }),
      this.#c.findOne({ partition, status: 'pending' }, { sort: { ts: 1 }, projection: { createdAt: 1 } }),
      this.#c.countDocuments({ partition, status: 'dead' }),
    ]);
    return { pending, oldestPendingAt: oldest?.createdAt ?? null, dead };
  }

  async get(id: string): Promise<StoredMessage | null> {
    const d = await this.#c.findOne({ _id: id });
    return d ? toStored(d) : null;
  }

  async listDead(partition: number, limit: number): Promise<StoredMessage[]> {
    const docs = await this.#c.find({ partition, status: 'dead' }, { sort: { ts: 1 }, limit }).toArray();
    return docs.map(toStored);
  }

  watchPending(onPartition: (partition: number) => void, onError: (err: unknown) => void): (() => Promise<void>) | undefined {
    if (!this.#changeStreams) return undefined;
    const stream: ChangeStream = this.#c.watch(
      [
        { $match: { $or: [{ operationType: 'insert' }, { 'updateDescription.updatedFields.status': 'pending' }] } },
        { $project: { 'fullDocument.partition': 1, documentKey: 1 } },
      ],
      { fullDocument: 'updateLookup' },
    );
    stream.on('change', (change: { fullDocument?: { partition?: number } }) => {
      const p = change.fullDocument?.partition;
      if (typeof p === 'number') onPartition(p);
    });
    stream.on('error', onError);
    return () => stream.close();
  }
}
