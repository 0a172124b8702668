/**
 * The package's main entry (`outbox-hub`): the curated API an application uses to
 * write outbox messages. Everything here is public and versioned; nothing else is.
 *
 * Invariants:
 * - Validation and duplicate-id checks happen before any write: an invalid
 *   batch, or one reusing an id (twice in the batch, or already pending, dead or
 *   published anywhere in the outbox), writes nothing and `err.index` names the
 *   offending message. A payload that passes validation is storable and reaches
 *   consumers unchanged (keys, depth, size, types and well-formed Unicode are
 *   checked).
 * - A message's id is stable and becomes its event id.
 * - partition = FNV-1a(key ?? id) mod P; messages of one key share a partition
 *   and are drained in the order one writer added them.
 * - Writers and drainers meet in one database: the drainers (and gateways) read
 *   the outbox in their `MONGO_DB`, which defaults to the database named in
 *   their `MONGO_URL`, else `outbox_hub`. An outbox written anywhere else is
 *   never published.
 *
 * Storage adapters (MongoOutboxStore, MemoryOutboxStore, the OutboxStore port)
 * and the outbox's collection layout (outboxLayout, PendingDocument,
 * DeadDocument, validateMessage, ...) are not part of the public API: they stay
 * internal to the binaries, which import them from internal/outbox.
 */
export {
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_PARTITIONS,
  MAX_BATCH,
  MAX_HEADERS,
  MAX_ID_LENGTH,
  MAX_KEY_LENGTH,
  MAX_PARTITIONS,
  MAX_PAYLOAD_DEPTH,
  OutboxError,
  createOutbox,
  isOutboxError,
  migrateOutbox,
  newMessageId,
  partitionOf,
  type AddOneOptions,
  type AddOptions,
  type MigrateOutboxOptions,
  type Outbox,
  type OutboxErrorCode,
  type OutboxMessageInput,
  type OutboxOptions,
  type OutboxReceipt,
} from '../outbox/index.js';
export { detectCapabilities, isTransientError, type ServerCapabilities } from '../mongo/index.js';
