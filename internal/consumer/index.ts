/**
 * Idempotent consumers ("exactly-once-ish"): run an event's side effects at
 * most once per consumer group, however often the event is delivered.
 *
 * Invariants:
 * - A (group, event id) is recorded as done only after its handler succeeded.
 * - With a transaction-capable server and a `client`, the record and the
 *   handler's writes through `ctx.session` commit together: exactly once for
 *   side effects in MongoDB.
 * - Without transactions, a claim with a lease guards the handler: concurrent
 *   duplicates get `IN_PROGRESS` (retry later); a claim left by a crashed
 *   worker is taken over after the lease; a crash between the handler and the
 *   record means one re-run (at-least-once), never a lost event.
 * - Records are kept for the retention period (TTL index, plus `purge`).
 */
import { MongoServerError, type ClientSession, type Collection, type Db, type MongoClient } from 'mongodb';
import { HubError } from '../errors/index.js';
import { ensureIndexes, isDuplicateKeyError } from '../mongo/index.js';

// Callers choose the transactional path with the server's capabilities: export the probe beside the store.
export { detectCapabilities, type ServerCapabilities } from '../mongo/index.js';

/** Why processing was refused. */
export type ConsumerErrorCode = 'IN_PROGRESS';

/** Raised by {@link processOnce}. */
export class ConsumerError extends HubError<ConsumerErrorCode> {}

/** Outcome of {@link processOnce}. */
export type ProcessOutcome = 'processed' | 'duplicate';

/** What handlers get besides the event. */
export interface ProcessContext {
  /** Present when the record commits in a transaction: write through it to make side effects exactly-once. */
  session: ClientSession | undefined;
}

interface DedupeDoc {
  _id: string;
  group: string;
  eventId: string;
  status: 'processing' | 'done';
  leaseUntil: Date;
  at: Date;
}

/** Server error code for a feature the server does not implement. */
const NOT_IMPLEMENTED = 238;

/** Default bound on how long a claim guards a running handler. */
export const DEFAULT_CLAIM_MS = 60_000;
/** Default retention of records. */
export const DEFAULT_RETENTION_MS = 7 * 86_400_000;

/** Options for {@link MongoDedupeStore}. */
export interface DedupeOptions {
  collection?: string;
  retentionMs?: number;
  claimMs?: number;
  /** Needed for the transactional path. */
  client?: MongoClient;
  /** Whether the server runs multi-document transactions (see `detectCapabilities`). */
  transactions?: boolean;
}

/** Dedupe records in a MongoDB collection keyed by group and event id. */
export class MongoDedupeStore {
  readonly #c: Collection<DedupeDoc>;
  readonly #o: Required<Pick<DedupeOptions, 'retentionMs' | 'claimMs'>> & DedupeOptions;

  constructor(db: Db, options: DedupeOptions = {}) {
    this.#c = db.collection<DedupeDoc>(options.collection ?? 'consumer_dedupe');
    this.#o = { retentionMs: DEFAULT_RETENTION_MS, claimMs: DEFAULT_CLAIM_MS, ...options };
  }

  /**
   * Idempotent start-up migration. Returns whether a TTL index enforces the
   * retention; where the server has none (FerretDB 1.x) call {@link purge} periodically.
   */
  async migrate(): Promise<{ ttl: boolean }> {
    try {
      await ensureIndexes(this.#c.db, this.#c.collectionName, [
        { key: { at: 1 }, name: 'at_ttl', expireAfterSeconds: Math.ceil(this.#o.retentionMs / 1000) },
      ]);
      return { ttl: true };
    } catch (err) {
      if (!(err instanceof MongoServerError && err.code === NOT_IMPLEMENTED)) throw err;
    }
    await ensureIndexes(this.#c.db, this.#c.collectionName, [{ key: { at: 1 }, name: 'at' }]);
    return { ttl: false };
  }

  /** Removes records older than the retention (for servers without TTL monitors). */
  async purge(now = new Date()): Promise<number> {
    const r = await this.#c.deleteMany({ at: { $lt: new Date(now.getTime() - this.#o.retentionMs) }, status: 'done' });
    return r.deletedCount;
  }

  /** Runs `fn` unless this group already processed `eventId`. */
  async processOnce(group: string, eventId: string, fn: (ctx: ProcessContext) => Promise<void>): Promise<ProcessOutcome> {
    const _id = `${group}/${eventId}`;
    const { client, transactions } = this.#o;
    if (client && transactions) {
      const session = client.startSession();
      let recording = false;
      try {
        let outcome: ProcessOutcome = 'processed';
        await session.withTransaction(async () => {
          // Read first: a record committed earlier means a duplicate, with no write error.
          // A write error aborts the transaction on the server, so none is ever caught in
          // here (the commit would fail with NoSuchTransaction, labelled transient, and the
          // driver would retry the callback until its time limit).
          outcome = (await this.#c.findOne({ _id }, { session, projection: { _id: 1 } })) ? 'duplicate' : 'processed';
          if (outcome === 'duplicate') return;
          recording = true;
          await this.#c.insertOne({ _id, group, eventId, status: 'done', leaseUntil: new Date(), at: new Date() }, { session });
          recording = false;
          await fn({ session });
        });
        return outcome;
      } catch (err) {
        // Another worker's record committed between our read and our insert: the transaction
        // is aborted (nothing of ours committed) and the event was processed by that worker.
        if (recording && isDuplicateKeyError(err)) return 'duplicate';
        throw err;
      } finally {
        await session.endSession();
      }
    }
    if (!(await this.#claim(_id, group, eventId))) return 'duplicate';
    try {
      await fn({ session: undefined });
    } catch (err) {
      // Releasing the claim is best effort: a claim left behind is taken over once it expires.
      await this.#c.deleteOne({ _id, status: 'processing' }).catch(() => undefined);
      throw err;
    }
    await this.#c.updateOne({ _id }, { $set: { status: 'done', at: new Date() } });
    return 'processed';
  }

  /** True when we may run the handler; false when it already ran; throws IN_PROGRESS when someone else runs it. */
  async #claim(_id: string, group: string, eventId: string): Promise<boolean> {
    const now = new Date();
    const leaseUntil = new Date(now.getTime() + this.#o.claimMs);
    try {
      await this.#c.insertOne({ _id, group, eventId, status: 'processing', leaseUntil, at: now });
      return true;
    } catch (err) {
      if (!isDuplicateKeyError(err)) throw err;
    }
    const existing = await this.#c.findOne({ _id });
    if (!existing) return this.#claim(_id, group, eventId);
    if (existing.status === 'done') return false;
    if (existing.leaseUntil > now) throw new ConsumerError('IN_PROGRESS', `event ${eventId} is being processed by another worker`);
    // The previous worker died mid-way: take its claim over.
    const r = await this.#c.updateOne({ _id, status: 'processing', leaseUntil: existing.leaseUntil }, { $set: { leaseUntil, at: now } });
    if (r.matchedCount === 0) throw new ConsumerError('IN_PROGRESS', `event ${eventId} was claimed concurrently`);
    return true;
  }
}

/**
 * Wraps an SDK-style handler `(payload, event) => ...` so a redelivered event
 * does not run it twice for `group`. Duplicates resolve (and are acked).
 */
export function idempotent<P, E extends { id: string }>(
  store: MongoDedupeStore,
  group: string,
  handler: (payload: P, event: E, ctx: ProcessContext) => Promise<void> | void,
): (payload: P, event: E) => Promise<void> {
  return async (payload, event) => {
    await store.processOnce(group, event.id, async (ctx) => {
      await handler(payload, event, ctx);
    });
  };
}
