/**
 * Base error for every Outbox Hub package.
 *
 * Invariants: callers decide by `code` (and `retryable`), never by `message`.
 * Each package narrows `C` to its own string union and keeps the original
 * failure in `cause`. Whether a failure may pass when retried unchanged is
 * decided once, where it happened (the storage adapter), and carried here:
 * nobody above walks `cause` chains to guess it.
 */
export class HubError<C extends string = string> extends Error {
  /** Stable, machine-readable reason. */
  readonly code: C;
  /** True when the same request may succeed if retried unchanged (an outage, a timeout). */
  readonly retryable: boolean;

  constructor(code: C, message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options);
    this.code = code;
    this.retryable = options?.retryable ?? false;
    this.name = new.target.name;
  }
}

/** True when `err` is an Outbox Hub error marked retryable where it happened. */
export function isRetryable(err: unknown): boolean {
  return err instanceof HubError && err.retryable;
}

/** True when `err` is any Outbox Hub error (optionally with one of `codes`). */
export function isHubError<C extends string>(err: unknown, ...codes: C[]): err is HubError<C> {
  if (!(err instanceof HubError)) return false;
  return codes.length === 0 || codes.includes(err.code as C);
}

/** Normalises anything thrown into a short string for logs and stored `lastError` fields. */
export function describeError(err: unknown): string {
  if (err instanceof HubError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
