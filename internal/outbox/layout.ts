import type { Db, IndexDescription } from 'mongodb';
import { ensureCollections, type CollectionSpec } from '../mongo/index.js';
import { DEFAULT_PARTITIONS, assertPartitions } from './message.js';

/** Default outbox name: partition `p` lives in `outbox_p<p>`, dead messages in `outbox_dead`. */
export const DEFAULT_OUTBOX_COLLECTION = 'outbox';

/**
 * A pending message in its partition's collection. The collection holds only
 * pending messages, so reading a partition is "the first N by `ts`" and
 * removing published ones is one delete, both bounded by the batch.
 */
export interface PendingDocument {
  /** The message id; becomes the event id. */
  _id: string;
  /** Per-writer monotonic order key (microseconds since epoch); orders the partition. */
  ts: number;
  topic: string;
  key: string | null;
  payload: unknown;
  headers: Record<string, string>;
  createdAt: Date;
  /** Failed publish attempts so far (absent = 0). */
  attempts?: number;
  lastError?: string;
  /**
   * Set on messages added with their own id: their fingerprint (see {@link IdClaimDocument}),
   * which the event keeps. Such a message holds a claim on its id until it is published.
   */
  digest?: string;
  /** Events this message was caused by (absent: none). Part of the digest. */
  causedBy?: string[];
  /** Labels subscriptions filter on (absent: none). Part of the digest. */
  tags?: string[];
  /** W3C trace context of the `create` span (or the one the writer passed); not part of the digest. */
  traceparent?: string;
  tracestate?: string;
}

/**
 * A message id taken by a message not yet published, in one collection for the whole
 * outbox: its unique `_id` is what keeps an id from being pending in two partitions at
 * once (partition collections are unique each on their own). Written with the message
 * (before it, in the same transaction when there is one) for caller-chosen ids only:
 * generated ids never collide. Removed by the drainer once the message is in the log,
 * whose unique `_id` takes over.
 */
export interface IdClaimDocument {
  _id: string;
  partition: number;
  /** SHA-256 (hex) of the message as added: topic, key, payload, headers and publisher. */
  digest: string;
  /** Nonce of the add call that wrote it: a failed call takes back its own claims only. */
  w: string;
  at: Date;
}

/** A message that could not be published, kept apart until an operator requeues it. */
export interface DeadDocument extends Omit<PendingDocument, 'attempts' | 'lastError'> {
  partition: number;
  attempts: number;
  lastError: string;
  diedAt: Date;
}

/**
 * A message of the single-collection layout of versions up to 0.1 (`outbox`,
 * every partition in one collection with a `status`). Drainers empty it first.
 */
export interface LegacyDocument extends PendingDocument {
  partition: number;
  status: 'pending' | 'sent' | 'dead';
}

/** Names of an outbox's collections. */
export interface OutboxLayout {
  readonly base: string;
  readonly partitions: number;
  partition(p: number): string;
  readonly dead: string;
  /** Claims on caller-chosen ids of messages not yet published ({@link IdClaimDocument}). */
  readonly ids: string;
  /** The pre-0.2 single collection, drained first where it still exists. */
  readonly legacy: string;
}

const PARTITION_NAME = /^(.+)_p(\d+)$/;

/** Collection names for an outbox called `base` with `partitions` partitions. */
export function outboxLayout(base = DEFAULT_OUTBOX_COLLECTION, partitions = DEFAULT_PARTITIONS): OutboxLayout {
  assertPartitions(partitions);
  return Object.freeze({
    base,
    partitions,
    partition: (p: number) => `${base}_p${p}`,
    dead: `${base}_dead`,
    ids: `${base}_ids`,
    legacy: base,
  });
}

/** The partition a collection of `layout` holds, or undefined for any other name. */
export function partitionOfCollection(layout: OutboxLayout, name: string): number | undefined {
  const m = PARTITION_NAME.exec(name);
  if (!m || m[1] !== layout.base) return undefined;
  const p = Number(m[2]);
  return p < layout.partitions && String(p) === m[2] ? p : undefined;
}

const PARTITION_INDEXES: IndexDescription[] = [{ key: { ts: 1 }, name: 'ts' }];
const DEAD_INDEXES: IndexDescription[] = [{ key: { partition: 1, diedAt: 1 }, name: 'partition_diedAt' }];

/** Options for {@link migrateOutbox}. */
export interface MigrateOutboxOptions {
  /** Outbox name. Default {@link DEFAULT_OUTBOX_COLLECTION}. */
  collection?: string;
  /** Partition count P; must match the writers' and drainers'. Default {@link DEFAULT_PARTITIONS}. */
  partitions?: number;
}

/**
 * Idempotent start-up migration: creates every partition's collection, the dead
 * collection and their indexes. Run it where you run your own migrations, with
 * the same partition count as the writers and drainers.
 */
export async function migrateOutbox(db: Db, options: MigrateOutboxOptions | string = {}): Promise<void> {
  const o = typeof options === 'string' ? { collection: options } : options;
  const layout = outboxLayout(o.collection, o.partitions);
  const specs: CollectionSpec[] = Array.from({ length: layout.partitions }, (_, p) => ({
    name: layout.partition(p),
    indexes: PARTITION_INDEXES,
  }));
  specs.push({ name: layout.dead, indexes: DEAD_INDEXES }, { name: layout.ids, indexes: [] });
  await ensureCollections(db, specs);
}
