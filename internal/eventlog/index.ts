/**
 * The durable event log the drainer appends to and everyone else reads.
 *
 * Invariants:
 * - Per partition, events carry a gap-free sequence 1, 2, 3, ... in append order.
 * - An event's id is its outbox message id and is unique across the log, so
 *   appending the same message twice stores it once (exactly-once append).
 * - An append lands as a contiguous prefix: no gap, even when a writer dies mid-way.
 * - Writes are fenced: `claim(p, epoch)` raises the partition's fence to `epoch`;
 *   from then on an append with a lower epoch fails with `FENCED` before writing.
 */
export { EventLogError, type EventLogErrorCode } from './errors.js';
export { MongoEventLog, EVENT_INDEXES, migrateEventLog, DEFAULT_EVENT_COLLECTIONS, type EventCollections } from './mongo.js';
export type { AppendResult, EventInput, EventLog, LogEvent, PartitionHead, ReadRange } from './types.js';
