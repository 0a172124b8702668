/**
 * Base error for every Outbox Hub package.
 *
 * Invariant: callers decide by `code`, never by `message`. Each package narrows
 * `C` to its own string union and keeps the original failure in `cause`.
 */
export class HubError<C extends string = string> extends Error {
  /** Stable, machine-readable reason. */
  readonly code: C;

  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
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
