import { HubError } from '../errors/index.js';

/**
 * Why a command failed. `USAGE`: the command line itself is wrong (exit 2);
 * everything else is a failure of the operation (exit 1): the server refused
 * (`UNAUTHORIZED`, `NOT_FOUND`, `CONFLICT`, `REFUSED`), could not be reached
 * (`UNREACHABLE`) or failed (`UNAVAILABLE`, `FAILED`).
 */
export type CliErrorCode = 'USAGE' | 'UNAUTHORIZED' | 'NOT_FOUND' | 'CONFLICT' | 'REFUSED' | 'UNREACHABLE' | 'UNAVAILABLE' | 'FAILED';

/** Exit codes: what scripts decide by. */
export const EXIT = Object.freeze({ OK: 0, FAILED: 1, USAGE: 2 });

/** Raised by commands; rendered as one `outbox-hub: ...` line on stderr and an exit code. */
export class CliError extends HubError<CliErrorCode> {
  /** The server's own error code, when a server refused (`GROUP_ACTIVE`, `SIGNATURE_INVALID`, ...). */
  readonly serverCode: string | undefined;

  constructor(code: CliErrorCode, message: string, options: { cause?: unknown; serverCode?: string } = {}) {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause });
    this.serverCode = options.serverCode;
  }

  get exitCode(): number {
    return this.code === 'USAGE' ? EXIT.USAGE : EXIT.FAILED;
  }
}

/** A usage error: exit 2 with `message`. */
export function usage(message: string): CliError {
  return new CliError('USAGE', message);
}
