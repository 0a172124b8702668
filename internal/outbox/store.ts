import type { Collection, Db, Document } from 'mongodb';
import { followChangeStream, isDuplicateKeyError } from '../mongo/index.js';
import {
  outboxLayout,
  partitionOfCollection,
  type DeadDocument,
  type IdClaimDocument,
  type LegacyDocument,
  type OutboxLayout,
  type PendingDocument,
} from './layout.js';
import { DEFAULT_PARTITIONS } from './message.js';

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
  /** The writer's order key within the partition. */
  ts: number;
  /** Fingerprint of a message added with its own id (it holds a claim on the id until removed). */
  digest?: string;
  causedBy?: string[];
  tags?: string[];
  /** W3C trace context the writer recorded (its `create` span's). */
  traceparent?: string;
  tracestate?: string;
}

/** Where an unpublished message is. Published messages are in the event log. */
export type OutboxStatus = 'pending' | 'dead';

/** An unpublished message, as operators see it. */
export interface StoredMessage extends PendingMessage {
  status: OutboxStatus;
  lastError: string | null;
  /** When it was moved to dead (null while pending). */
  diedAt: Date | null;
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
 * Invariants: `pending` returns a partition's pending messages in write order
 * (`ts`); `remove` and `recordFailure` only touch the messages given, so a late
 * call can never resurrect or reorder anything; a dead message leaves its
 * partition until `requeue` appends it again at the end.
 */
export interface OutboxStore {
  /** The oldest `limit` pending messages of `partition`, in order. */
  pending(partition: number, limit: number): Promise<PendingMessage[]>;
  /**
   * Removes published (or duplicate) messages from their partition: one delete, and one
   * more for the id claims of those added with their own ids. Returns how many went.
   */
  remove(partition: number, messages: readonly PendingMessage[]): Promise<number>;
  /** Counts a failed attempt; `dead` moves the message out of its partition with its last error. */
  recordFailure(message: PendingMessage, error: string, dead: boolean): Promise<void>;
  /** Moves dead messages back to the end of their partitions (attempts reset). Returns how many moved. */
  requeue(ids: readonly string[]): Promise<number>;
  backlog(partition: number): Promise<PartitionBacklog>;
  /** An unpublished message by id; `partition` saves looking in every partition. */
  get(id: string, partition?: number): Promise<StoredMessage | null>;
  listDead(partition: number, limit: number): Promise<StoredMessage[]>;
  /**
   * Calls `onPartition` when a message may have become pending. Returns a stop
   * function, or `undefined` when the server has no change streams (poll instead).
   */
  watchPending?(onPartition: (partition: number) => void, onError: (err: unknown) => void): (() => Promise<void>) | undefined;
}

function toPending(d: PendingDocument, partition: number): PendingMessage {
  return {
    id: d._id,
    topic: d.topic,
    key: d.key,
    partition,
    payload: d.payload,
    headers: d.headers ?? {},
    createdAt: d.createdAt,
    attempts: d.attempts ?? 0,
    ts: d.ts,
    ...(d.digest === undefined ? {} : { digest: d.digest }),
    ...carried(d),
  };
}

/** The optional fields a message carries from its writer to its event, copied only when present. */
function carried(
  d: Pick<PendingDocument, 'causedBy' | 'tags' | 'traceparent' | 'tracestate'>,
): Partial<Pick<PendingDocument, 'causedBy' | 'tags' | 'traceparent' | 'tracestate'>> {
  return {
    ...(d.causedBy === undefined ? {} : { causedBy: d.causedBy }),
    ...(d.tags === undefined ? {} : { tags: d.tags }),
    ...(d.traceparent === undefined ? {} : { traceparent: d.traceparent }),
    ...(d.tracestate === undefined ? {} : { tracestate: d.tracestate }),
  };
}

function toStored(d: PendingDocument | DeadDocument, partition: number, status: OutboxStatus): StoredMessage {
  return {
    ...toPending(d, partition),
    status,
    lastError: d.lastError ?? null,
    diedAt: 'diedAt' in d ? d.diedAt : null,
  };
}

/** Most partitions watched with one change stream each (beyond it, drainers poll on such servers). */
export const MAX_COLLECTION_STREAMS = 64;

/** Options for {@link MongoOutboxStore}. */
export interface MongoOutboxStoreOptions {
  /** Outbox name. Default `outbox`. */
  collection?: string;
  partitions?: number;
  /**
   * How drainers are woken: one change stream on the database (`database`), one
   * per partition collection (`collections`, for servers without database-wide
   * streams; up to {@link MAX_COLLECTION_STREAMS} partitions), or not at all
   * (poll). Probe the server first (`detectCapabilities`).
   */
  changeStreams?: 'database' | 'collections' | false;
}

/**
 * {@link OutboxStore} over one MongoDB collection per partition plus a dead
 * collection. Each drain batch is one `find` sorted by `ts` with a limit and
 * one `deleteMany` by `_id`, both bounded by the batch on MongoDB and by one
 * partition's backlog on servers without index pushdown.
 *
 * Messages left in the single collection of versions up to 0.1 (`outbox`) are
 * drained first, partition by partition, until none is pending there.
 */
export class MongoOutboxStore implements OutboxStore {
  readonly #db: Db;
  readonly #layout: OutboxLayout;
  readonly #partitions: Array<Collection<PendingDocument>>;
  readonly #dead: Collection<DeadDocument>;
  readonly #ids: Collection<IdClaimDocument>;
  readonly #legacy: Collection<LegacyDocument>;
  readonly #changeStreams: 'database' | 'collections' | false;
  /** Resolves to whether the legacy collection exists (checked once). */
  #legacyExists: Promise<boolean> | undefined;
  /** Partitions whose legacy messages are all gone. */
  readonly #legacyDone = new Set<number>();
  readonly #fromLegacy = new WeakSet<PendingMessage>();
  #lastTs = 0;

  constructor(db: Db, options: MongoOutboxStoreOptions = {}) {
    this.#db = db;
    this.#layout = outboxLayout(options.collection, options.partitions ?? DEFAULT_PARTITIONS);
    this.#partitions = Array.from({ length: this.#layout.partitions }, (_, p) => db.collection<PendingDocument>(this.#layout.partition(p)));
    this.#dead = db.collection<DeadDocument>(this.#layout.dead);
    this.#ids = db.collection<IdClaimDocument>(this.#layout.ids);
    this.#legacy = db.collection<LegacyDocument>(this.#layout.legacy);
    this.#changeStreams = options.changeStreams ?? false;
  }

  async pending(partition: number, limit: number): Promise<PendingMessage[]> {
    if (await this.#inLegacy(partition)) {
      const old = await this.#legacy.find({ partition, status: 'pending' }, { sort: { ts: 1 }, limit }).toArray();
      if (old.length > 0) {
        return old.map((d) => {
          const m = toPending(d, partition);
          this.#fromLegacy.add(m);
          return m;
        });
      }
      this.#legacyDone.add(partition);
    }
    const docs = await this.#coll(partition)
      .find({}, { sort: { ts: 1 }, limit })
      .toArray();
    return docs.map((d) => toPending(d, partition));
  }

  async remove(partition: number, messages: readonly PendingMessage[]): Promise<number> {
    if (messages.length === 0) return 0;
    const legacy = messages.filter((m) => this.#fromLegacy.has(m)).map((m) => m.id);
    const current = messages.filter((m) => !this.#fromLegacy.has(m)).map((m) => m.id);
    let n = 0;
    if (current.length > 0) n += (await this.#coll(partition).deleteMany({ _id: { $in: current } })).deletedCount;
    if (legacy.length > 0) n += (await this.#legacy.deleteMany({ _id: { $in: legacy }, status: 'pending' })).deletedCount;
    // The log's unique _id holds these ids now. A crash before this delete leaves claims
    // behind; they keep refusing the id to other messages, as the log does.
    const claimed = messages.filter((m) => m.digest !== undefined).map((m) => m.id);
    if (claimed.length > 0) await this.#ids.deleteMany({ _id: { $in: claimed }, partition });
    return n;
  }

  async recordFailure(message: PendingMessage, error: string, dead: boolean): Promise<void> {
    const lastError = error.slice(0, 2000);
    const legacy = this.#fromLegacy.has(message);
    if (!dead) {
      if (legacy) await this.#legacy.updateOne({ _id: message.id, status: 'pending' }, { $inc: { attempts: 1 }, $set: { lastError } });
      else await this.#coll(message.partition).updateOne({ _id: message.id }, { $inc: { attempts: 1 }, $set: { lastError } });
      return;
    }
    const doc = legacy
      ? await this.#legacy.findOne({ _id: message.id, status: 'pending' })
      : await this.#coll(message.partition).findOne({ _id: message.id });
    if (!doc) return;
    await this.#bury(doc, message.partition, (doc.attempts ?? 0) + 1, lastError);
    if (legacy) await this.#legacy.deleteOne({ _id: message.id });
    else await this.#coll(message.partition).deleteOne({ _id: message.id, ts: doc.ts });
  }

  async requeue(ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return 0;
    const dead = await this.#dead.find({ _id: { $in: [...ids] } }).toArray();
    let moved = 0;
    for (const d of dead) {
      const doc: PendingDocument = {
        _id: d._id,
        ts: this.#nextTs(),
        topic: d.topic,
        key: d.key,
        payload: d.payload,
        headers: d.headers,
        createdAt: d.createdAt,
        ...(d.digest === undefined ? {} : { digest: d.digest }),
        ...carried(d),
      };
      try {
        await this.#coll(d.partition).insertOne(doc);
      } catch (err) {
        // Requeued already (a concurrent requeue or an earlier one that died before the delete).
        if (!isDuplicateKeyError(err)) throw err;
      }
      moved += (await this.#dead.deleteOne({ _id: d._id })).deletedCount;
    }
    return moved;
  }

  async backlog(partition: number): Promise<PartitionBacklog> {
    const coll = this.#coll(partition);
    // The partition's collection holds only pending messages: its count is the backlog
    // (metadata on MongoDB, no scan).
    const [pending, oldest, dead, legacy] = await Promise.all([
      coll.estimatedDocumentCount(),
      coll.findOne({}, { sort: { ts: 1 }, projection: { createdAt: 1 } }),
      this.#dead.countDocuments({ partition }),
      this.#inLegacy(partition).then(async (yes) =>
        yes ? this.#legacy.findOne({ partition, status: 'pending' }, { sort: { ts: 1 }, projection: { createdAt: 1 } }) : null,
      ),
    ]);
    const legacyPending = legacy ? await this.#legacy.countDocuments({ partition, status: 'pending' }) : 0;
    return { pending: pending + legacyPending, oldestPendingAt: legacy?.createdAt ?? oldest?.createdAt ?? null, dead };
  }

  async get(id: string, partition?: number): Promise<StoredMessage | null> {
    const dead = await this.#dead.findOne({ _id: id });
    if (dead) return toStored(dead, dead.partition, 'dead');
    const where = partition === undefined ? this.#partitions.map((_, p) => p) : [partition];
    for (const p of where) {
      const d = await this.#coll(p).findOne({ _id: id });
      if (d) return toStored(d, p, 'pending');
    }
    if (await this.#legacyCollectionExists()) {
      const old = await this.#legacy.findOne({ _id: id, status: 'pending' });
      if (old) return toStored(old, old.partition, 'pending');
    }
    return null;
  }

  async listDead(partition: number, limit: number): Promise<StoredMessage[]> {
    const docs = await this.#dead.find({ partition }, { sort: { diedAt: 1 }, limit }).toArray();
    return docs.map((d) => toStored(d, partition, 'dead'));
  }

  watchPending(onPartition: (partition: number) => void, onError: (err: unknown) => void): (() => Promise<void>) | undefined {
    const mode = this.#changeStreams === 'collections' && this.#partitions.length > MAX_COLLECTION_STREAMS ? false : this.#changeStreams;
    if (!mode) return undefined;
    // Inserts are the only way a message becomes pending (a requeue inserts too).
    if (mode === 'database') {
      const names = this.#partitions.map((c) => c.collectionName);
      return followChangeStream<{ ns?: { coll?: string } }>(
        () => this.#db.watch([{ $match: { operationType: 'insert', 'ns.coll': { $in: names } } }, { $project: { ns: 1 } }]),
        (change) => {
          const p = change.ns?.coll === undefined ? undefined : partitionOfCollection(this.#layout, change.ns.coll);
          if (p !== undefined) onPartition(p);
        },
        onError,
      );
    }
    const stops = this.#partitions.map((c, p) =>
      followChangeStream<Document>(
        () => c.watch([{ $match: { operationType: 'insert' } }, { $project: { _id: 1 } }]),
        () => onPartition(p),
        onError,
      ),
    );
    return async () => void (await Promise.all(stops.map((stop) => stop())));
  }

  async #bury(doc: PendingDocument, partition: number, attempts: number, lastError: string): Promise<void> {
    const dead: DeadDocument = {
      _id: doc._id,
      ts: doc.ts,
      topic: doc.topic,
      key: doc.key,
      payload: doc.payload,
      headers: doc.headers ?? {},
      createdAt: doc.createdAt,
      ...(doc.digest === undefined ? {} : { digest: doc.digest }),
      ...carried(doc),
      partition,
      attempts,
      lastError,
      diedAt: new Date(),
    };
    try {
      await this.#dead.insertOne(dead);
    } catch (err) {
      // Buried already by a holder that died before removing it from its partition.
      if (!isDuplicateKeyError(err)) throw err;
    }
  }

  #coll(partition: number): Collection<PendingDocument> {
    const c = this.#partitions[partition];
    if (!c) throw new RangeError(`partition ${partition} is outside 0..${this.#layout.partitions - 1}`);
    return c;
  }

  async #inLegacy(partition: number): Promise<boolean> {
    if (this.#legacyDone.has(partition)) return false;
    const exists = await this.#legacyCollectionExists();
    if (!exists) this.#legacyDone.add(partition);
    return exists;
  }

  #legacyCollectionExists(): Promise<boolean> {
    this.#legacyExists ??= this.#prepareLegacy().catch((err: unknown) => {
      this.#legacyExists = undefined;
      throw err;
    });
    return this.#legacyExists;
  }

  /** Finds the pre-0.2 collection and moves its dead messages to the dead collection (idempotent). */
  async #prepareLegacy(): Promise<boolean> {
    // Filtered again here: some servers (mongo-java-server) ignore the listing's filter.
    const found = await this.#db.listCollections({ name: this.#layout.legacy }, { nameOnly: true }).toArray();
    if (!found.some((c) => c.name === this.#layout.legacy)) return false;
    for (const d of await this.#legacy.find({ status: 'dead' }).toArray()) {
      await this.#bury(d, d.partition, d.attempts ?? 0, d.lastError ?? 'dead before the upgrade');
      await this.#legacy.deleteOne({ _id: d._id, status: 'dead' });
    }
    return true;
  }

  #nextTs(): number {
    this.#lastTs = Math.max(this.#lastTs + 1, Date.now() * 1000);
    return this.#lastTs;
  }
}
