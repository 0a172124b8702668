import {
  MongoBulkWriteError,
  MongoClientClosedError,
  MongoError,
  MongoErrorLabel,
  MongoNetworkError,
  MongoNotConnectedError,
  MongoServerError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
  MongoWriteConcernError,
} from 'mongodb';
import { HubError } from '../errors/index.js';

/**
 * Why a MongoDB helper failed. `UNKNOWN_HOST`: a host of the URL does not
 * resolve (a configuration error, not an outage); `CONNECT_FAILED`: the server
 * did not answer and no retry was asked for (or the wait was aborted).
 */
export type MongoHelperErrorCode = 'CONNECT_FAILED' | 'UNKNOWN_HOST';

/** Raised by {@link connectMongo}. */
export class MongoHelperError extends HubError<MongoHelperErrorCode> {}

/** Server error codes the adapters decide on (MongoDB's `error_codes.yml`). */
export const MONGO_ERROR = Object.freeze({
  NamespaceExists: 48,
  DuplicateKey: 11000,
});

/** True for a duplicate-key write error (E11000), including inside a bulk write. */
export function isDuplicateKeyError(err: unknown): boolean {
  if (!(err instanceof MongoError)) return false;
  if (err.code === MONGO_ERROR.DuplicateKey) return true;
  const writeErrors = (err as { writeErrors?: unknown }).writeErrors;
  if (Array.isArray(writeErrors)) return writeErrors.some((w: { code?: number }) => w.code === MONGO_ERROR.DuplicateKey);
  return false;
}

/**
 * Server error codes that mean "not now" rather than "never": the server (or the
 * replica set) is unreachable, stepping down, shutting down, busy or timed out.
 * The driver's own retryable-code list, plus timeouts and write conflicts.
 */
const TRANSIENT_SERVER_CODES: ReadonlySet<number> = new Set([
  6, // HostUnreachable
  7, // HostNotFound
  24, // LockTimeout
  46, // LockBusy
  50, // MaxTimeMSExpired
  64, // WriteConcernFailed (timed out waiting for replication)
  89, // NetworkTimeout
  91, // ShutdownInProgress
  112, // WriteConflict
  133, // FailedToSatisfyReadPreference
  134, // ReadConcernMajorityNotAvailableYet
  189, // PrimarySteppedDown
  262, // ExceededTimeLimit
  9001, // SocketException
  10107, // NotWritablePrimary
  11600, // InterruptedAtShutdown
  11602, // InterruptedDueToReplStateChange
  13435, // NotPrimaryNoSecondaryOk
  13436, // NotPrimaryOrSecondary
  63, // StaleShardVersion
  150, // StaleEpoch
  13388, // StaleConfig
]);

/**
 * Server error codes that refuse the document itself (its keys, values, size or
 * shape): sending it again can never succeed.
 */
const DOCUMENT_REJECTED_CODES: ReadonlySet<number> = new Set([
  2, // BadValue (FerretDB: $-prefixed or dotted keys, NaN/Infinity)
  15, // Overflow (nesting too deep)
  22, // InvalidBSON
  52, // DollarPrefixedFieldName
  56, // EmptyFieldName
  57, // DottedFieldName
  121, // DocumentValidationFailure
  10334, // BSONObjectTooLarge
  17280, // KeyTooLong
]);

/**
 * True for failures worth retrying unchanged: network errors and timeouts,
 * server selection failures, primary step-downs and the other transient server
 * codes above, and errors the driver labels retryable. Decided by error class,
 * label and server code only. A server error that refuses the request itself
 * (bad document, not authorised, unknown command, ...) is not transient: no
 * retry can make it succeed.
 */
export function isTransientError(err: unknown): boolean {
  if (isSocketError(err)) return true;
  if (!(err instanceof MongoError)) return false;
  // insertMany and bulkWrite wrap a failure of the connection itself (a reset in the middle
  // of the write) in a MongoBulkWriteError without its labels; the driver keeps the original
  // error as `errorResponse` (driver 6 and 7), and that one is judged.
  if (err instanceof MongoBulkWriteError) {
    const original: unknown = err.errorResponse;
    if (original instanceof MongoError && original !== err) return isTransientError(original);
  }
  if (
    err.hasErrorLabel(MongoErrorLabel.TransientTransactionError) ||
    err.hasErrorLabel(MongoErrorLabel.RetryableWriteError) ||
    err.hasErrorLabel(MongoErrorLabel.RetryableError) ||
    err.hasErrorLabel(MongoErrorLabel.SystemOverloadedError)
  )
    return true;
  // MongoNetworkError covers its timeout and pool-cleared subclasses.
  if (err instanceof MongoNetworkError || err instanceof MongoServerSelectionError || err instanceof MongoNotConnectedError) return true;
  // A closed client: this process is stopping; the work is retried by whoever continues it.
  if (err instanceof MongoTopologyClosedError || err instanceof MongoClientClosedError) return true;
  if (err instanceof MongoServerError || err instanceof MongoWriteConcernError)
    return typeof err.code === 'number' && TRANSIENT_SERVER_CODES.has(err.code);
  return false;
}

/**
 * Node's error codes for a connection that failed under a request: the peer reset or closed
 * it, or cannot be reached.
 */
const SOCKET_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'EPIPE',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'ENOTCONN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
]);

/**
 * True for a socket error the driver let through unwrapped. Driver 7.9 throws Node's own
 * `Error: write ECONNRESET` from `Connection.writeCommand` when the server resets the
 * connection as a command is written (seen in the outage test: a database killed, its port
 * answering with resets), instead of a MongoNetworkError. Decided by Node's error code.
 */
export function isSocketError(err: unknown): boolean {
  if (!(err instanceof Error) || err instanceof MongoError) return false;
  const code = (err as NodeJS.ErrnoException).code;
  return typeof code === 'string' && SOCKET_ERROR_CODES.has(code);
}

/** True for what a storage call may fail with: a driver error, or a socket error the driver let through. */
export function isStorageError(err: unknown): err is Error {
  return err instanceof MongoError || isSocketError(err);
}

/** True when the server refused a written document itself (see {@link DOCUMENT_REJECTED_CODES}). */
export function isDocumentRejectedError(err: unknown): boolean {
  return err instanceof MongoServerError && typeof err.code === 'number' && DOCUMENT_REJECTED_CODES.has(err.code);
}
