import type { ClientSession, Collection, Db } from 'mongodb';
import { MongoBulkWriteError, MongoError, MongoErrorLabel } from 'mongodb';
import { MongoEventLog, type EventLog } from '../eventlog/index.js';
import { isDuplicateKeyError } from '../mongo/index.js';
import { OutboxError } from './errors.js';
import { outboxLayout, type OutboxLayout, type PendingDocument } from './layout.js';
import { DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_PARTITIONS, partitionOf, validateMessage, type OutboxMessageInput } from './message.js';

/** Most messages one {@link Outbox.addMany} call takes. */
export const MAX_BATCH = 10_000;

/** Options for {@link createOutbox}. */
export interface OutboxOptions {
  /** Partition count P; must match the drainers'. Default {@link DEFAULT_PARTITIONS}. */
  partitions?: number;
  /** Payload bound in BSON bytes. Default {@link DEFAULT_MAX_PAYLOAD_BYTES}. */
  maxPayloadBytes?: number;
  /** Outbox name (collections `<name>_p<partition>`, `<name>_dead`). Default `outbox`. */
  collection?: string;
  /** Event log collection the drainers append to (for duplicate-id checks). Default `events`. */
  eventsCollection?: string;
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

interface Entry {
  index: number;
  partition: number;
  explicit: boolean;
  doc: PendingDocument;
}

/**
 * The application-facing writer. Write outbox messages in the same session as
 * the business document; the drainer publishes them after commit.
 *
 * Writes go to the collection of each message's partition, so a batch touches
 * one collection per partition it spans. A batch is validated and checked for
 * duplicate ids (within itself, against pending and against published
 * messages) before anything is written; a write that fails half-way is taken
 * back (in the caller's transaction when there is one).
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
  readonly #db: Db;
  readonly #layout: OutboxLayout;
  readonly #log: EventLog;
  readonly #collections = new Map<number, Collection<PendingDocument>>();
  #lastTs = 0;

  constructor(db: Db, options: OutboxOptions = {}) {
    this.partitions = options.partitions ?? DEFAULT_PARTITIONS;
    this.#layout = outboxLayout(options.collection, this.partitions);
    this.maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    if (!Number.isSafeInteger(this.maxPayloadBytes) || this.maxPayloadBytes < 1 || this.maxPayloadBytes > 15 * 1024 * 1024) {
      throw new OutboxError('INVALID_OPTIONS', 'maxPayloadBytes must be a whole number from 1 to 15 MiB');
    }
    this.#db = db;
    this.#log = new MongoEventLog(db, options.eventsCollection === undefined ? {} : { events: options.eventsCollection });
  }

  /** Adds one message. See {@link Outbox.addMany}. */
  async add<P>(message: OutboxMessageInput<P>, options: AddOptions = {}): Promise<OutboxReceipt> {
    const [receipt] = await this.addMany([message], options);
    return receipt as OutboxReceipt;
  }

  /**
   * Validates every message and checks every id first, then writes. Nothing is
   * written when any message is invalid (`err.index` names it) or reuses an id
   * (`DUPLICATE_ID`: twice in the batch, still pending, or already published).
   */
  async addMany<P>(messages: ReadonlyArray<OutboxMessageInput<P>>, options: AddOptions = {}): Promise<OutboxReceipt[]> {
    if (!Array.isArray(messages) || messages.length === 0) {
      throw new OutboxError('INVALID_PAYLOAD', 'addMany needs a non-empty array of messages');
    }
    if (messages.length > MAX_BATCH)
      throw new OutboxError('BATCH_TOO_LARGE', `at most ${MAX_BATCH} messages per call, got ${messages.length}`);
    throwIfAborted(options.signal);
    const now = Date.now();
    const createdAt = new Date(now);
    const entries: Entry[] = messages.map((input, index) => {
      const m = validateMessage(input, index, this.maxPayloadBytes, now);
      const doc: PendingDocument = {
        _id: m.id,
        ts: this.#nextTs(now),
        topic: m.topic,
        key: m.key,
        payload: m.payload,
        headers: m.headers,
        createdAt,
      };
      return { index, partition: partitionOf(m.key ?? m.id, this.partitions), explicit: (input as { id?: unknown }).id !== undefined, doc };
    });
    await this.#checkIds(entries, options.session);
    throwIfAborted(options.signal);
    const groups = new Map<number, Entry[]>();
    for (const e of entries) groups.set(e.partition, [...(groups.get(e.partition) ?? []), e]);
    const written: Entry[][] = [];
    try {
      for (const [partition, group] of groups) {
        written.push(group);
        await this.#collection(partition).insertMany(
          group.map((e) => e.doc),
          { session: options.session, ordered: true },
        );
      }
    } catch (err) {
      // In the application's transaction a failed write has aborted it on the server:
      // nothing of this call can commit, and a label asking for a retry of the whole
      // transaction must reach the driver's withTransaction as it is.
      if (options.session?.inTransaction()) {
        if (err instanceof MongoError && err.hasErrorLabel(MongoErrorLabel.TransientTransactionError)) throw err;
      } else await this.#takeBack(written, options.session, err);
      if (isDuplicateKeyError(err)) {
        const failed = written[written.length - 1] ?? [];
        const at = err instanceof MongoBulkWriteError ? firstWriteErrorIndex(err) : 0;
        throw new OutboxError('DUPLICATE_ID', 'a message with this id is already pending', { cause: err, index: failed[at ?? 0]?.index });
      }
      if (err instanceof MongoError) throw new OutboxError('WRITE_FAILED', `outbox write failed: ${err.message}`, { cause: err });
      throw err;
    }
    await this.#checkPublishedMeanwhile(entries, written, options.session);
    return entries.map((e) => ({ id: e.doc._id, topic: e.doc.topic, key: e.doc.key, partition: e.partition, createdAt }));
  }

  /** Duplicate ids within the batch, among pending messages and in the event log: refused before any write. */
  async #checkIds(entries: readonly Entry[], session: ClientSession | undefined): Promise<void> {
    const first = new Map<string, number>();
    for (const e of entries) {
      const seen = first.get(e.doc._id);
      if (seen !== undefined)
        throw new OutboxError('DUPLICATE_ID', `id ${e.doc._id} appears twice in the batch (first at index ${seen})`, { index: e.index });
      first.set(e.doc._id, e.index);
    }
    const explicit = entries.filter((e) => e.explicit);
    if (explicit.length === 0) return;
    const published = await this.#log.present(explicit.map((e) => e.doc._id));
    const hit = explicit.find((e) => published.has(e.doc._id));
    if (hit) throw new OutboxError('DUPLICATE_ID', `a message with id ${hit.doc._id} was already published`, { index: hit.index });
    // A single message's insert is refused atomically by the unique _id; a batch spans several writes.
    if (entries.length === 1) return;
    const byPartition = new Map<number, Entry[]>();
    for (const e of explicit) byPartition.set(e.partition, [...(byPartition.get(e.partition) ?? []), e]);
    for (const [partition, group] of byPartition) {
      const ids = group.map((e) => e.doc._id);
      const found = await this.#collection(partition)
        .find({ _id: ids.length === 1 ? (ids[0] as string) : { $in: ids } }, { session, projection: { _id: 1 } })
        .toArray();
      const pending = new Set(found.map((d) => d._id));
      const dup = group.find((e) => pending.has(e.doc._id));
      if (dup) throw new OutboxError('DUPLICATE_ID', `a message with id ${dup.doc._id} is already pending`, { index: dup.index });
    }
  }

  /**
   * Closes the race with a concurrent add of the same id that was published
   * between our check and our write: the log then holds the other message, and
   * ours is taken back. (Our own message, drained already, is not a duplicate.)
   */
  async #checkPublishedMeanwhile(entries: readonly Entry[], written: Entry[][], session: ClientSession | undefined): Promise<void> {
    const explicit = entries.filter((e) => e.explicit);
    if (explicit.length === 0) return;
    const present = await this.#log.present(explicit.map((e) => e.doc._id));
    for (const e of explicit) {
      if (!present.has(e.doc._id)) continue;
      const logged = await this.#log.get(e.doc._id);
      if (logged && logged.createdAt.getTime() === e.doc.createdAt.getTime() && logged.topic === e.doc.topic && logged.key === e.doc.key)
        continue;
      await this.#takeBack(written, session, undefined);
      throw new OutboxError('DUPLICATE_ID', `a message with id ${e.doc._id} was published meanwhile`, { index: e.index });
    }
  }

  /** Deletes what this call wrote (matched by id and its own order key, so another writer's message is never touched). */
  async #takeBack(written: readonly Entry[][], session: ClientSession | undefined, cause: unknown): Promise<void> {
    try {
      for (const group of written) {
        const partition = group[0]?.partition ?? 0;
        await this.#collection(partition).deleteMany({ $or: group.map((e) => ({ _id: e.doc._id, ts: e.doc.ts })) }, { session });
      }
    } catch (err) {
      throw new OutboxError(
        'WRITE_FAILED',
        'the batch failed and what it had written could not be taken back; those messages will be published',
        {
          cause: cause ?? err,
        },
      );
    }
  }

  #collection(partition: number): Collection<PendingDocument> {
    let c = this.#collections.get(partition);
    if (!c) this.#collections.set(partition, (c = this.#db.collection<PendingDocument>(this.#layout.partition(partition))));
    return c;
  }

  /** Strictly increasing per writer, so a writer's messages keep their order within a partition. */
  #nextTs(nowMs: number): number {
    this.#lastTs = Math.max(this.#lastTs + 1, nowMs * 1000);
    return this.#lastTs;
  }
}

function firstWriteErrorIndex(err: MongoBulkWriteError): number {
  const w = err.writeErrors;
  return (Array.isArray(w) ? (w[0] as { index?: number } | undefined)?.index : (w as { index?: number }).index) ?? 0;
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new OutboxError('ABORTED', 'aborted before writing', { cause: signal.reason });
}

/**
 * Creates an {@link Outbox} writer over `db`.
 *
 * `db` must be the database the hub's drainers read: their `MONGO_DB`, which
 * defaults to the database named in their `MONGO_URL`, else `outbox_hub`.
 * Messages written to an outbox in any other database are stored but never
 * published. `options.partitions` must equal the drainers' `OUTBOX_PARTITIONS`
 * (default 16), and `options.collection` must stay `outbox`, the name the
 * drainers read.
 *
 * @example
 * // drainers and gateways run with MONGO_DB=shop
 * const db = client.db('shop');
 * await migrateOutbox(db);
 * const outbox = createOutbox(db);
 */
export function createOutbox(db: Db, options: OutboxOptions = {}): Outbox {
  return new Outbox(db, options);
}
