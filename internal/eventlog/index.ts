/**
 * The durable event log the drainer appends to and everyone else reads.
 *
 * Invariants (every adapter; checked by `test/contract/eventlog.ts`):
 * - Per partition, events carry a gap-free sequence 1, 2, 3, ... in append order,
 *   whatever the server's insert chunking, the writers' concurrency or where a
 *   writer crashes: an append never writes above an empty slot, and takes back
 *   what its own failed insert left above one.
 * - An event's id is its outbox message id and is unique across the log, so
 *   appending the same message twice stores it once (exactly-once append); a
 *   claim remembers the partition's latest ids so a new holder recognises what
 *   its predecessor appended but did not remove, without asking the server.
 * - Writes are fenced: `claim(p, epoch)` raises the partition's fence to `epoch`;
 *   from then on an append with a lower epoch fails with `FENCED` before writing.
 * - Readers advance only over contiguous sequences. A hole (from a server or
 *   version that broke the first invariant) is reported with `reportStall` and
 *   filled by an operator with `repairGap`: filler events marked `gap` that
 *   readers step over.
 */
export { EventLogError, type EventLogErrorCode } from './errors.js';
export { APPEND_CHUNK, MongoEventLog, EVENT_INDEXES, migrateEventLog, DEFAULT_EVENT_COLLECTIONS, type EventCollections } from './mongo.js';
export { MemoryEventLog, MemoryEventStorage } from './memory.js';
export type {
  AppendResult,
  EventAppender,
  EventInput,
  EventLog,
  EventLogRepair,
  EventLogRetention,
  EventMeta,
  EventReader,
  EventSize,
  LogEvent,
  MatchCount,
  MatchQuery,
  PartitionHead,
  PartitionRetention,
  ReadRange,
  SeqRange,
  SequenceGap,
  SnapshotCursor,
  StallReport,
} from './types.js';
