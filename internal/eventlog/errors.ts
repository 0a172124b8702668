import { HubError } from '../errors/index.js';

/** Why an event-log operation failed. */
export type EventLogErrorCode = 'FENCED' | 'INVALID_EPOCH' | 'INVALID_RANGE' | 'CONFLICT';

/** Error raised by an {@link EventLog}. */
export class EventLogError extends HubError<EventLogErrorCode> {}
