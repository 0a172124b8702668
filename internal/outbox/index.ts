/**
 * The transactional outbox: the library applications use to write messages,
 * and the store port the drainer reads them through.
 *
 * Invariants:
 * - Validation happens before any write: an invalid batch writes nothing. A
 *   payload that passes validation is storable and reaches consumers unchanged
 *   (keys, depth, size and types are checked; see validateMessage).
 * - A message's id is stable and becomes its event id; a second add with the
 *   same id fails with `DUPLICATE_ID` rather than publishing twice.
 * - partition = FNV-1a(key ?? id) mod P; messages of one key share a partition
 *   and are drained in the order one writer added them (the `ts` sort key).
 * - Status only moves pending -> sent, pending -> dead and dead -> pending.
 * - The outbox holds only unpublished (pending and dead) messages, so it stays
 *   small and its pending index hot; published ones move to `<outbox>_sent`
 *   for the retention period (the event log is the durable record).
 */
export { OutboxError, isOutboxError, type OutboxErrorCode } from './errors.js';
export {
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_PARTITIONS,
  MAX_HEADERS,
  MAX_ID_LENGTH,
  MAX_KEY_LENGTH,
  MAX_PARTITIONS,
  MAX_PAYLOAD_DEPTH,
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
  createOutbox,
  migrateOutbox,
  sentCollectionName,
  type AddOptions,
  type OutboxOptions,
  type OutboxReceipt,
} from './outbox.js';
export { MongoOutboxStore, type OutboxStore, type PartitionBacklog, type PendingMessage, type StoredMessage } from './store.js';
