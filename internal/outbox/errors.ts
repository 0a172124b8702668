import { HubError } from '../errors/index.js';

/** Why the outbox refused or failed an operation. */
export type OutboxErrorCode =
  | 'INVALID_TOPIC'
  | 'INVALID_KEY'
  | 'INVALID_ID'
  | 'INVALID_PAYLOAD'
  | 'PAYLOAD_TOO_LARGE'
  | 'INVALID_HEADERS'
  | 'INVALID_CAUSED_BY'
  | 'INVALID_TAGS'
  | 'INVALID_TRACE_CONTEXT'
  | 'INVALID_OPTIONS'
  | 'DUPLICATE_ID'
  | 'BATCH_TOO_LARGE'
  | 'ABORTED'
  | 'WRITE_FAILED';

/** Error raised by the outbox; `index` names the offending message in a batch. */
export class OutboxError extends HubError<OutboxErrorCode> {
  /** Position of the offending message when a batch was refused. */
  readonly index: number | undefined;

  constructor(code: OutboxErrorCode, message: string, options?: { cause?: unknown; index?: number; retryable?: boolean }) {
    super(code, message, options);
    this.index = options?.index;
  }
}

/** True when `err` is an {@link OutboxError}. */
export function isOutboxError(err: unknown): err is OutboxError {
  return err instanceof OutboxError;
}
