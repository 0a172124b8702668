import { HubError } from '../errors/index.js';

/**
 * Why an event-log operation failed.
 * - `FENCED`: a newer lease epoch claimed the partition; the caller must stop writing.
 * - `CONFLICT`: concurrent writers kept taking the slots this append aimed at; retry later.
 * - `GAP_TOO_RECENT`: a repair was refused because a write may still be landing.
 */
export type EventLogErrorCode = 'FENCED' | 'INVALID_EPOCH' | 'INVALID_RANGE' | 'CONFLICT' | 'GAP_TOO_RECENT';

/** Error raised by an {@link EventLog}. */
export class EventLogError extends HubError<EventLogErrorCode> {}

/** The error an append or claim below the partition's fence gets. */
export function fenced(partition: number, epoch: number): EventLogError {
  return new EventLogError('FENCED', `partition ${partition} is fenced above epoch ${epoch}`);
}

/** Arguments every adapter refuses alike. */
export function assertPartition(partition: number): void {
  if (!Number.isSafeInteger(partition) || partition < 0)
    throw new EventLogError('INVALID_RANGE', 'partition must be a non-negative integer');
}

export function assertLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 10_000) throw new EventLogError('INVALID_RANGE', 'limit must be 1-10000');
}

export function assertRange(range: { afterSeq: number; toSeq: number }): void {
  if (!Number.isSafeInteger(range.afterSeq) || range.afterSeq < 0 || !Number.isSafeInteger(range.toSeq) || range.toSeq < range.afterSeq)
    throw new EventLogError('INVALID_RANGE', 'a range needs 0 <= afterSeq <= toSeq');
}
