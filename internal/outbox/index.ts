/**
 * The transactional outbox: the library applications use to write messages,
 * and the store port the drainer reads them through.
 *
 * Invariants:
 * - Validation happens before any write: an invalid batch writes nothing.
 * - A message's id is stable and becomes its event id; a second add with the
 *   same id fails with `DUPLICATE_ID` rather than publishing twice.
 * - partition = FNV-1a(key ?? id) mod P; messages of one key share a partition
 *   and are drained in the order one writer added them (the `ts` sort key).
 * - Status only moves pending -> sent, pending -> dead and dead -> pending.
 * - The outbox holds only unpublished (pending and dead) messages, so it stays
 *   small and its pending index hot; published ones move to `<outbox>_sent`
 *   for the retention period (the event log is the durable record).
 * - Writers and drainers meet in one database: the drainers (and gateways) read
 *   the outbox in their `MONGO_DB`, which defaults to the database named in
 *   their `MONGO_URL`, else `outbox_hub`. An outbox written anywhere else is
 *   never published.
 */
import type { Db } from 'mongodb';
import { createOutbox as newOutbox, type Outbox, type OutboxOptions } from './outbox.js';

export { OutboxError, isOutboxError, type OutboxErrorCode } from './errors.js';
export {
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_PARTITIONS,
  MAX_HEADERS,
  MAX_ID_LENGTH,
  MAX_KEY_LENGTH,
  MAX_PARTITIONS,
  newMessageId,
  partitionOf,
  validateMessage,
  type OutboxDocument,
  type OutboxMessageInput,
  type OutboxStatus,
  type ValidMessage,
} from './message.js';
export {
  DEFAULT_OUTBOX_COLLECTION,
  OUTBOX_INDEXES,
  Outbox,
  migrateOutbox,
  sentCollectionName,
  type AddOptions,
  type OutboxOptions,
  type OutboxReceipt,
} from './outbox.js';
export { MongoOutboxStore, type OutboxStore, type PartitionBacklog, type PendingMessage, type StoredMessage } from './store.js';
export { detectCapabilities, type ServerCapabilities } from '../mongo/index.js';

/**
 * Creates an {@link Outbox} writer over `db`.
 *
 * `db` must be the database the hub's drainers read: their `MONGO_DB`, which
 * defaults to the database named in their `MONGO_URL`, else `outbox_hub`.
 * Messages written to an outbox in any other database are stored but never
 * published. `options.partitions` must equal the drainers' `OUTBOX_PARTITIONS`
 * (default 16), and `options.collection` must stay `outbox`, the collection
 * the drainers read.
 *
 * @example
 * // drainers and gateways run with MONGO_DB=shop
 * const db = client.db('shop');
 * await migrateOutbox(db);
 * const outbox = createOutbox(db);
 */
export function createOutbox(db: Db, options: OutboxOptions = {}): Outbox {
  return newOutbox(db, options);
}
