import { createHash, randomBytes } from 'node:crypto';
import type { ClientSession, Collection, Db } from 'mongodb';
import { BSON, MongoBulkWriteError, MongoError, MongoErrorLabel } from 'mongodb';
import { MongoEventLog, type EventReader } from '../eventlog/index.js';
import { isDocumentRejectedError, isDuplicateKeyError, isStorageError, isTransientError } from '../mongo/index.js';
import {
  failSpan,
  formatTraceContext,
  startMessageSpan,
  traceContextOf,
  traceFields,
  type Span,
  type TraceContext,
} from '../tracecontext/index.js';
import { OutboxError } from './errors.js';
import { outboxLayout, type DeadDocument, type IdClaimDocument, type OutboxLayout, type PendingDocument } from './layout.js';
import {
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_PARTITIONS,
  partitionOf,
  validateMessage,
  type OutboxMessageInput,
  type ValidMessage,
} from './message.js';

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
  /**
   * On whose behalf the message is added (the gateway passes the token's subject). Part of
   * what makes two adds of one id the same message: another publisher's message with the
   * same id, topic, key and payload is a different message.
   */
  publisher?: string;
}

/** Options for {@link Outbox.add} beyond those of a batch. */
export interface AddOneOptions extends AddOptions {
  /**
   * For a message with its own id: when that id was already added for the same message
   * (same topic, key, payload, headers and publisher; pending, dead or published), answer
   * with its receipt marked `duplicate` instead of `DUPLICATE_ID` (a retried publish). The
   * same id used for a different message is refused with `DUPLICATE_ID` either way.
   */
  idempotent?: boolean;
}

/** What {@link Outbox.add} returns for each accepted message. */
export interface OutboxReceipt {
  id: string;
  topic: string;
  key: string | null;
  partition: number;
  createdAt: Date;
  /** True when an idempotent add found the same message already added (nothing was written). */
  duplicate?: true;
}

interface Entry {
  index: number;
  partition: number;
  /** The caller chose the id: it is claimed across the outbox and fingerprinted. */
  explicit: boolean;
  doc: PendingDocument;
}

/**
 * The application-facing writer. Write outbox messages in the same session as
 * the business document; the drainer publishes them after commit.
 *
 * Writes go to the collection of each message's partition, so a batch touches
 * one collection per partition it spans. A batch is validated and checked for
 * duplicate ids (within itself and against published messages) before anything
 * is written. Caller-chosen ids are claimed in one collection for the whole
 * outbox before the messages are written, so one id is never pending in two
 * partitions. A write that fails half-way is taken back (in the caller's
 * transaction it aborts the transaction instead).
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
  readonly #log: Pick<EventReader, 'get' | 'present'>;
  readonly #ids: Collection<IdClaimDocument>;
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
    this.#ids = db.collection<IdClaimDocument>(this.#layout.ids);
    this.#log = new MongoEventLog(db, options.eventsCollection === undefined ? {} : { events: options.eventsCollection });
  }

  /** Adds one message. See {@link Outbox.addMany}; with `idempotent`, a retry of the same message is answered, not refused. */
  async add<P>(message: OutboxMessageInput<P>, options: AddOneOptions = {}): Promise<OutboxReceipt> {
    try {
      const [receipt] = await this.addMany([message], options);
      return receipt as OutboxReceipt;
    } catch (err) {
      if (!options.idempotent || options.session || !(err instanceof OutboxError) || err.code !== 'DUPLICATE_ID') throw err;
      const id = (message as { id?: unknown }).id;
      if (typeof id !== 'string') throw err;
      try {
        return await this.#sameMessage(this.#entry(message, 0, Date.now(), options.publisher), options.publisher, err);
      } catch (lookup) {
        throw storageFailure(lookup, undefined);
      }
    }
  }

  /**
   * Validates every message and checks every id first, then writes. Nothing is
   * written when any message is invalid (`err.index` names it) or reuses an id
   * (`DUPLICATE_ID`: twice in the batch, pending in any partition, dead, or
   * already published). A storage failure is an `OutboxError` marked
   * `retryable` when it may pass (`WRITE_FAILED`), or `INVALID_PAYLOAD` when the
   * server refused the document; inside the caller's transaction a failure the
   * driver labels transient is thrown as it is, so `withTransaction` retries.
   */
  async addMany<P>(messages: ReadonlyArray<OutboxMessageInput<P>>, options: AddOptions = {}): Promise<OutboxReceipt[]> {
    // One `create` span per message, children of the caller's active span: each message carries
    // its own span's context (without a tracer provider they are the API's no-op spans).
    const spans: Span[] = [];
    try {
      const receipts = await this.#addMany(messages, options, spans);
      for (const s of spans) s.end();
      return receipts;
    } catch (err) {
      const failure = storageFailure(err, options.session);
      for (const s of spans) failSpan(s, failure);
      throw failure;
    }
  }

  async #addMany<P>(messages: ReadonlyArray<OutboxMessageInput<P>>, options: AddOptions, spans: Span[]): Promise<OutboxReceipt[]> {
    if (!Array.isArray(messages) || messages.length === 0) {
      throw new OutboxError('INVALID_PAYLOAD', 'addMany needs a non-empty array of messages');
    }
    if (messages.length > MAX_BATCH)
      throw new OutboxError('BATCH_TOO_LARGE', `at most ${MAX_BATCH} messages per call, got ${messages.length}`);
    throwIfAborted(options.signal);
    const now = Date.now();
    const entries: Entry[] = messages.map((input, index) => this.#entry(input, index, now, options.publisher, spans));
    await this.#checkIds(entries);
    throwIfAborted(options.signal);
    const groups = new Map<number, Entry[]>();
    for (const e of entries) groups.set(e.partition, [...(groups.get(e.partition) ?? []), e]);
    const claims = entries.filter((e) => e.explicit);
    const written: Entry[][] = [];
    // Tells this call's claims from another writer's when taking them back.
    const writer = randomBytes(6).toString('base64url');
    let claimed = false;
    try {
      if (claims.length > 0) {
        await this.#ids.insertMany(
          claims.map((e) => ({ _id: e.doc._id, partition: e.partition, digest: e.doc.digest as string, w: writer, at: e.doc.createdAt })),
          { session: options.session, ordered: true },
        );
        claimed = true;
      }
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
      if (!options.session?.inTransaction()) await this.#takeBack(written, claims, writer, err);
      if (isDuplicateKeyError(err)) {
        const failed = claimed ? (written[written.length - 1] ?? []) : claims;
        const at = err instanceof MongoBulkWriteError ? firstWriteErrorIndex(err) : 0;
        const index = failed[at ?? 0]?.index;
        throw new OutboxError('DUPLICATE_ID', `a message with id ${entries[index ?? 0]?.doc._id} is already pending`, {
          cause: err,
          index,
        });
      }
      throw err;
    }
    await this.#checkPublishedMeanwhile(written, claims, writer, options.session);
    return entries.map((e) => ({ id: e.doc._id, topic: e.doc.topic, key: e.doc.key, partition: e.partition, createdAt: e.doc.createdAt }));
  }

  /**
   * Validates one input and builds its document (a fingerprint for a caller-chosen id). With
   * `spans`, starts the message's `create` span there and carries its context; without, carries
   * the given or the active context as it is.
   */
  #entry(input: unknown, index: number, now: number, publisher: string | undefined, spans?: Span[]): Entry {
    const m = validateMessage(input, index, this.maxPayloadBytes, now);
    const explicit = (input as { id?: unknown }).id !== undefined;
    const partition = partitionOf(m.key ?? m.id, this.partitions);
    const given: TraceContext | undefined =
      m.traceparent === undefined
        ? undefined
        : { traceparent: m.traceparent, ...(m.tracestate === undefined ? {} : { tracestate: m.tracestate }) };
    let carried: TraceContext | undefined;
    if (spans) {
      const span = startMessageSpan('create', { topic: m.topic, id: m.id, partition }, given);
      spans.push(span);
      // A no-op span started as a root has no context: the given one (if any) goes on as it is.
      carried = formatTraceContext(span.spanContext()) ?? given;
    } else carried = given ?? traceContextOf();
    const doc: PendingDocument = {
      _id: m.id,
      ts: this.#nextTs(now),
      topic: m.topic,
      key: m.key,
      payload: m.payload,
      headers: m.headers,
      createdAt: new Date(now),
      ...(explicit ? { digest: messageDigest(m, publisher) } : {}),
      ...(m.causedBy === undefined ? {} : { causedBy: m.causedBy }),
      ...(m.tags === undefined ? {} : { tags: m.tags }),
      ...traceFields(carried),
    };
    return { index, partition, explicit, doc };
  }

  /**
   * Answers an idempotent add whose id is taken: the receipt of the message holding it
   * when it is the same message, else `DUPLICATE_ID`. A claim whose message was never
   * written (its writer died between the two writes) is completed here.
   */
  async #sameMessage(entry: Entry, publisher: string | undefined, refusal: OutboxError): Promise<OutboxReceipt> {
    const { doc } = entry;
    const different = (): OutboxError =>
      new OutboxError('DUPLICATE_ID', `id ${doc._id} is already used for a different message`, { cause: refusal, index: 0 });
    const receipt = (partition: number, createdAt: Date): OutboxReceipt => ({
      id: doc._id,
      topic: doc.topic,
      key: doc.key,
      partition,
      createdAt,
      duplicate: true,
    });
    const claim = await this.#ids.findOne({ _id: doc._id });
    if (claim) {
      if (claim.digest !== doc.digest) throw different();
      const pending = await this.#collection(claim.partition).findOne({ _id: doc._id }, { projection: { createdAt: 1 } });
      if (pending) return receipt(claim.partition, pending.createdAt);
      const logged = await this.#log.get(doc._id);
      if (logged) return receipt(logged.partition, logged.createdAt);
      const dead = await this.#db.collection<DeadDocument>(this.#layout.dead).findOne({ _id: doc._id }, { projection: { createdAt: 1 } });
      if (dead) return receipt(claim.partition, dead.createdAt);
      try {
        await this.#collection(claim.partition).insertOne(doc);
      } catch (err) {
        // The same message, written meanwhile by the writer we thought had died: it is there.
        if (!isDuplicateKeyError(err)) throw err;
      }
      return receipt(claim.partition, doc.createdAt);
    }
    const logged = await this.#log.get(doc._id);
    if (logged) {
      if (logged.digest !== doc.digest) throw different();
      return receipt(logged.partition, logged.createdAt);
    }
    // Neither claimed nor published: the holder took its claim back (its write failed). Ours may go now.
    const spans: Span[] = [];
    const again = await this.#addMany(
      [
        {
          id: doc._id,
          topic: doc.topic,
          key: doc.key,
          payload: doc.payload,
          headers: doc.headers,
          ...(doc.causedBy === undefined ? {} : { causedBy: doc.causedBy }),
          ...(doc.tags === undefined ? {} : { tags: doc.tags }),
          ...(doc.traceparent === undefined ? {} : { traceparent: doc.traceparent, tracestate: doc.tracestate }),
        },
      ],
      { ...(publisher === undefined ? {} : { publisher }) },
      spans,
    ).finally(() => spans.forEach((s) => s.end()));
    return again[0] as OutboxReceipt;
  }

  /** Duplicate ids within the batch and in the event log: refused before any write (pending ones by the claims). */
  async #checkIds(entries: readonly Entry[]): Promise<void> {
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
  }

  /**
   * Closes the race with a concurrent add of the same id that was published
   * between our check and our claim: the log then holds the other message, and
   * ours is taken back. (Our own message, drained already, is not a duplicate.)
   */
  async #checkPublishedMeanwhile(
    written: Entry[][],
    claims: readonly Entry[],
    writer: string,
    session: ClientSession | undefined,
  ): Promise<void> {
    if (claims.length === 0) return;
    const present = await this.#log.present(claims.map((e) => e.doc._id));
    for (const e of claims) {
      if (!present.has(e.doc._id)) continue;
      const logged = await this.#log.get(e.doc._id);
      if (logged && logged.createdAt.getTime() === e.doc.createdAt.getTime() && logged.digest === e.doc.digest) continue;
      // In a transaction the caller's abort takes everything back.
      if (!session?.inTransaction()) await this.#takeBack(written, claims, writer, undefined);
      throw new OutboxError('DUPLICATE_ID', `a message with id ${e.doc._id} was published meanwhile`, { index: e.index });
    }
  }

  /**
   * Deletes what this call wrote outside a transaction (matched by id and its own order
   * key or writer nonce, so another writer's message or claim is never touched).
   */
  async #takeBack(written: readonly Entry[][], claims: readonly Entry[], writer: string, cause: unknown): Promise<void> {
    try {
      for (const group of written) {
        const partition = group[0]?.partition ?? 0;
        await this.#collection(partition).deleteMany({ $or: group.map((e) => ({ _id: e.doc._id, ts: e.doc.ts })) });
      }
      if (claims.length > 0) await this.#ids.deleteMany({ _id: { $in: claims.map((e) => e.doc._id) }, w: writer });
    } catch (err) {
      // What was written stays and will be published. A retry with the same ids is answered
      // as a duplicate (or completes the write), so the failure is as retryable as the outage.
      throw new OutboxError(
        'WRITE_FAILED',
        'the batch failed and what it had written could not be taken back: it may be published; retry with the same ids',
        { cause: cause ?? err, retryable: isTransientError(err) },
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

/**
 * The fingerprint two adds of one id are compared by: SHA-256 of the BSON of the message's
 * topic, key, payload, headers, publisher, causes and tags (BSON keeps key order and types,
 * so equal input gives equal bytes). Causes and tags enter only when present, so a message
 * without them has the digest it had before they existed. The trace context stays out: a
 * retry in another trace is the same message.
 */
function messageDigest(m: ValidMessage, publisher: string | undefined): string {
  const bytes = BSON.serialize({
    t: m.topic,
    k: m.key,
    p: m.payload,
    h: m.headers,
    u: publisher ?? null,
    ...(m.causedBy === undefined ? {} : { c: m.causedBy }),
    ...(m.tags === undefined ? {} : { g: m.tags }),
  });
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * What a failure of the outbox's storage is to its caller, decided once, here: typed, and
 * marked retryable when retrying unchanged may succeed. In the caller's transaction a
 * failure the driver labels transient stays as it is: `withTransaction` retries on the label.
 */
function storageFailure(err: unknown, session: ClientSession | undefined): unknown {
  if (err instanceof OutboxError || !isStorageError(err)) return err;
  if (session?.inTransaction() && err instanceof MongoError && err.hasErrorLabel(MongoErrorLabel.TransientTransactionError)) return err;
  if (isDocumentRejectedError(err)) return new OutboxError('INVALID_PAYLOAD', 'the database refused to store this message', { cause: err });
  return new OutboxError('WRITE_FAILED', `outbox write failed: ${err.message}`, { cause: err, retryable: isTransientError(err) });
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
