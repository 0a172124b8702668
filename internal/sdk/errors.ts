import type { ErrorCode } from '../protocol/index.js';

/** Why a client call failed: a gateway `ERR` code or a client-side reason. */
export type ClientErrorCode = ErrorCode | 'TIMEOUT' | 'CLOSED' | 'ABORTED' | 'CONNECTION_LOST';

/** Error raised by the SDK. Decide by `code`. */
export class HubClientError extends Error {
  readonly code: ClientErrorCode;
  /** For publishes: the event id, so a caller can retry idempotently. */
  readonly eventId: string | undefined;

  constructor(code: ClientErrorCode, message: string, options: { cause?: unknown; eventId?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HubClientError';
    this.code = code;
    this.eventId = options.eventId;
  }
}
