import type { ClientSession, Collection, Db } from 'mongodb';
import { MongoError } from 'mongodb';
import { ensureIndexes, isDuplicateKeyError } from '../mongo/index.js';
import { OutboxError } from './errors.js';
import {
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_PARTITIONS,
  assertPartitions,
  partitionOf,
  validateMessage,
  type OutboxDocument,
  type OutboxMessageInput,
} from './message.js';

/** Default outbox collection name. */
export const DEFAULT_OUTBOX_COLLECTION = 'outbox';

/** Options for {@link createOutbox}. */
export interface OutboxOptions {
  /** Partition count P; must match the drainers'. Default {@link DEFAULT_PARTITIONS}. */
  partitions?: number;
  /** Payload bound in BSON bytes. Default {@link DEFAULT_MAX_PAYLOAD_BYTES}. */
  maxPayloadBytes?: number;
  /** Collection name. Default {@link DEFAULT_OUTBOX_COLLECTION}. */
  collection?: string;
}

/** Options for one {@link Outbox.add} call. */
export interface AddOptions {
  /** The application's session; pass the one its transaction runs in to commit atomically with its own writes. */
  session?: ClientSession;
  signal?: AbortSignal;
}

/** What {@link Outbox.add} returns for each accepted message. */
export interface OutboxReceipt {
  id: string;
  topic: string;
  key: string | null;
  partition: number;
  createdAt: Date;
}

/** Index set of the outbox collection (applied by {@link migrateOutbox}). */
export const OUTBOX_INDEXES = [{ key: { partition: 1, status: 1, ts: 1 }, name: 'partition_status_ts' }] as const;

/** Name of the archive that holds sent messages for the retention period. */
export function sentCollectionName(outbox: string): string {
  return `${outbox}_sent`;
}

/** Idempotent start-up migration: creates the outbox, its sent archive and their indexes. */
export async function migrateOutbox(db: Db, collection = DEFAULT_OUTBOX_COLLECTION): Promise<void> {
  await ensureIndexes(
    db,
    collection,
    OUTBOX_INDEXES.map((i) => ({ ...i, key: { ...i.key } })),
  );
  await ensureIndexes(db, sentCollectionName(collection), [{ key: { sentAt: 1 }, name: 'sentAt' }]);
}

/**
 * The application-facing writer. Write outbox messages in the same session as
 * the business document; the drainer publishes them after commit.
 *
 * @example
 * await session.withTransaction(async () => {
 *   await orders.insertOne(order, { session });
 *   await outbox.add({ topic: 'orders.created', key: order._id, payload: order }, { session });
 * });
 */
export class Outbox {
  readonly partitions: number;
  readonly maxPayloadBytes: number;
  readonly #collection: Collection<OutboxDocument>;
  readonly #sent: Collection<{ _id: string }>;
  #lastTs = 0;

  constructor(db: Db, options: OutboxOptions = {}) {
    this.partitions = options.partitions ?? DEFAULT_PARTITIONS;
    assertPartitions(this.partitions);
    this.maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    if (!Number.isSafeInteger(this.maxPayloadBytes) || this.maxPayloadBytes < 1 || this.maxPayloadBytes > 15 * 1024 * 1024) {
      throw new OutboxError('INVALID_OPTIONS', 'maxPayloadBytes must be a whole number from 1 to 15 MiB');
    }
    const name = options.collection ?? DEFAULT_OUTBOX_COLLECTION;
    this.#collection = db.collection<OutboxDocument>(name);
    this.#sent = db.collection<{ _id: string }>(sentCollectionName(name));
  }

  /** Adds one message. See {@link Outbox.addMany}. */
  async add<P>(message: OutboxMessageInput<P>, options: AddOptions = {}): Promise<OutboxReceipt> {
    const [receipt] = await this.addMany([message], options);
    return receipt as OutboxReceipt;
  }

  /**
   * Validates every message first, then writes them in one insert. Nothing is
   * written when any message is invalid. Throws `DUPLICATE_ID` when an id was
   * already accepted.
   */
  async addMany<P>(messages: ReadonlyArray<OutboxMessageInput<P>>, options: AddOptions = {}): Promise<OutboxReceipt[]> {
    if (!Array.isArray(messages) || messages.length === 0) {
      throw new OutboxError('INVALID_PAYLOAD', 'addMany needs a non-empty array of messages');
    }
    if (options.signal?.aborted) throw new OutboxError('ABORTED', 'aborted before writing', { cause: options.signal.reason });
    const now = Date.now();
    const createdAt = new Date(now);
    const docs: OutboxDocument[] = messages.map((input, index) => {
      const m = validateMessage(input, index, this.maxPayloadBytes, now);
      return {
        _id: m.id,
        topic: m.topic,
        key: m.key,
        partition: partitionOf(m.key ?? m.id, this.partitions),
        payload: m.payload,
        headers: m.headers,
        status: 'pending',
        ts: this.#nextTs(now),
        createdAt,
        attempts: 0,
      };
    });
    const explicit = messages.filter((m) => m.id !== undefined).map((m) => m.id as string);
    try {
      await this.#collection.insertMany(docs, { session: options.session, ordered: true });
      // Published messages leave the outbox for the archive, so a caller-chosen id must be new there too.
      // Checked after the insert: the drainer archives before it deletes, so a copy drained before our
      // insert succeeded is visible now, and one still pending made the insert fail above.
      if (
        explicit.length > 0 &&
        (await this.#sent.findOne({ _id: { $in: explicit } }, { session: options.session, projection: { _id: 1 } }))
      ) {
        await this.#collection.deleteMany({ _id: { $in: docs.map((d) => d._id) }, status: 'pending' }, { session: options.session });
        throw new OutboxError('DUPLICATE_ID', 'a message with this id was already accepted and published');
      }
    } catch (err) {
      if (err instanceof OutboxError) throw err;
      if (isDuplicateKeyError(err)) throw new OutboxError('DUPLICATE_ID', 'a message with this id was already accepted', { cause: err });
      if (err instanceof MongoError) throw new OutboxError('WRITE_FAILED', `outbox write failed: ${err.message}`, { cause: err });
      throw err;
    }
    return docs.map((d) => ({ id: d._id, topic: d.topic, key: d.key, partition: d.partition, createdAt }));
  }

  /** Strictly increasing per writer, so a writer's messages keep their order within a partition. */
  #nextTs(nowMs: number): number {
    this.#lastTs = Math.max(this.#lastTs + 1, nowMs * 1000);
    return this.#lastTs;
  }
}

/** Creates an {@link Outbox} writer over `db`. */
export function createOutbox(db: Db, options: OutboxOptions = {}): Outbox {
  return new Outbox(db, options);
}
