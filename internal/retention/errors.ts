import { HubError } from '../errors/index.js';

/** Why retention refused: a policy that cannot be applied. */
export type RetentionErrorCode = 'INVALID_POLICY';

/** Raised when retention policies are parsed (at start-up: a binary then stops with a clear error). */
export class RetentionError extends HubError<RetentionErrorCode> {}
