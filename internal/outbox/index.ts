/**
 * The transactional outbox: the library applications use to write messages,
 * and the store port the drainer reads them through.
 *
 * Invariants:
 * - Validation and duplicate-id checks happen before any write: an invalid
 *   batch, or one reusing an id (twice in the batch, pending in any partition,
 *   dead, or published), writes nothing and `err.index` names the offending
 *   message. Caller-chosen ids are claimed in one collection for the whole
 *   outbox (`<name>_ids`, unique `_id`) in the same write sequence (the same
 *   transaction when there is one) as the message; the drainer releases the
 *   claim once the event is in the log, whose unique `_id` takes over. A payload that
 *   passes validation is storable and reaches consumers unchanged (keys, depth,
 *   size and types are checked; see validateMessage).
 * - A message's id is stable and becomes its event id.
 * - partition = FNV-1a(key ?? id) mod P; messages of one key share a partition
 *   and are drained in the order one writer added them (the `ts` sort key).
 * - Each partition has its own collection holding only pending messages;
 *   publishing a message removes it (the event log is the durable record), so a
 *   drain batch costs one bounded read and one delete whatever the backlog.
 * - A dead message leaves its partition for the dead collection; requeueing
 *   appends it at the end of its partition.
 * - Writers and drainers meet in one database: the drainers (and gateways) read
 *   the outbox in their `MONGO_DB`, which defaults to the database named in
 *   their `MONGO_URL`, else `outbox_hub`. An outbox written anywhere else is
 *   never published.
 */
export { OutboxError, isOutboxError, type OutboxErrorCode } from './errors.js';
export {
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_PARTITIONS,
  MAX_CAUSED_BY,
  MAX_HEADERS,
  MAX_ID_LENGTH,
  MAX_KEY_LENGTH,
  MAX_PARTITIONS,
  MAX_PAYLOAD_DEPTH,
  MAX_TAG_LENGTH,
  MAX_TAGS,
  TAG_PATTERN,
  isEventId,
  newMessageId,
  partitionOf,
  validateMessage,
  type OutboxMessageInput,
  type ValidMessage,
} from './message.js';
export {
  DEFAULT_OUTBOX_COLLECTION,
  migrateOutbox,
  outboxLayout,
  type DeadDocument,
  type MigrateOutboxOptions,
  type OutboxLayout,
  type PendingDocument,
} from './layout.js';
export { MAX_BATCH, Outbox, createOutbox, type AddOneOptions, type AddOptions, type OutboxOptions, type OutboxReceipt } from './outbox.js';
export {
  MongoOutboxStore,
  type MongoOutboxStoreOptions,
  type OutboxStatus,
  type OutboxStore,
  type PartitionBacklog,
  type PendingMessage,
  type StoredMessage,
} from './store.js';
export { MemoryOutboxStore } from './memory.js';
export { detectCapabilities, type ServerCapabilities } from '../mongo/index.js';
