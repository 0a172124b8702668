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
