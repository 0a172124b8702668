import type { ChangeStream, Collection, Db } from 'mongodb';
import { isDuplicateKeyError } from '../mongo/index.js';
import type { OutboxDocument, OutboxStatus } from './message.js';
import { DEFAULT_OUTBOX_COLLECTION, sentCollectionName } from './outbox.js';

/** An archived (published) message; lives in `<outbox>_sent` until retention removes it. */
type SentDocument = Omit<OutboxDocument, 'ts' | 'status' | 'sentAt'> & { status: 'sent'; sentAt: Date };

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
  /**
   * Moves published messages out of the outbox into the sent archive (kept for
   * the retention period). Idempotent: archiving twice stores one copy.
   */
  markSent(messages: readonly PendingMessage[], at: Date): Promise<number>;
  /** Counts a failed attempt; `dead` moves the message out of the way with its last error. */
  recordFailure(id: string, error: string, dead: boolean): Promise<void>;
  /** Moves dead messages back to pending (attempts reset). Returns how many moved. */
  requeue(ids: readonly string[]): Promise<number>;
  /** Deletes up to `limit` archived sent messages older than `before`. */
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

function toStored(d: OutboxDocument | SentDocument): StoredMessage {
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
  readonly #sent: Collection<SentDocument>;
  readonly #changeStreams: boolean;

  constructor(db: Db, options: { collection?: string; changeStreams?: boolean } = {}) {
    const name = options.collection ?? DEFAULT_OUTBOX_COLLECTION;
    this.#c = db.collection<OutboxDocument>(name);
    this.#sent = db.collection<SentDocument>(sentCollectionName(name));
    this.#changeStreams = options.changeStreams ?? false;
  }

  async pending(partition: number, limit: number): Promise<PendingMessage[]> {
    const docs = await this.#c.find({ partition, status: 'pending' }, { sort: { ts: 1 }, limit }).toArray();
    return docs.map(toStored);
  }

  async markSent(messages: readonly PendingMessage[], at: Date): Promise<number> {
    if (messages.length === 0) return 0;
    const archived: SentDocument[] = messages.map((m) => ({
      _id: m.id,
      topic: m.topic,
      key: m.key,
      partition: m.partition,
      payload: m.payload,
      headers: m.headers,
      status: 'sent',
      createdAt: m.createdAt,
      attempts: m.attempts,
      sentAt: at,
    }));
    try {
      await this.#sent.insertMany(archived, { ordered: false });
    } catch (err) {
      // Already archived by a holder that died before deleting: the archive keeps its copy.
      if (!isDuplicateKeyError(err)) throw err;
    }
    const r = await this.#c.deleteMany({ _id: { $in: messages.map((m) => m.id) }, status: 'pending' });
    return r.deletedCount;
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
    const ids = await this.#sent.find({ sentAt: { $lt: before } }, { projection: { _id: 1 }, limit, sort: { sentAt: 1 } }).toArray();
    if (ids.length === 0) return 0;
    const r = await this.#sent.deleteMany({ _id: { $in: ids.map((d) => d._id) } });
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
    const d = (await this.#c.findOne({ _id: id })) ?? (await this.#sent.findOne({ _id: id }));
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
