import { HubError } from '../errors/index.js';
import type { ErrorCode } from '../protocol/index.js';

/** Why a client call failed: a gateway `ERR` code or a client-side reason. */
export type ClientErrorCode = ErrorCode | 'TIMEOUT' | 'CLOSED' | 'ABORTED' | 'CONNECTION_LOST' | 'DRAINING';

/** Error raised by the SDK. Decide by `code`. */
export class HubClientError extends HubError<ClientErrorCode> {
  /** For publishes: the event id, so a caller can retry idempotently. */
  readonly eventId: string | undefined;

  constructor(code: ClientErrorCode, message: string, options: { cause?: unknown; eventId?: string } = {}) {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause });
    // Set by hand: the browser build is minified, so the class's own name is not this one.
    this.name = 'HubClientError';
    this.eventId = options.eventId;
  }
}
