/**
 * Process lifecycle for the binaries.
 *
 * Invariants: the first SIGTERM/SIGINT starts an orderly stop and the process
 * exits when it completes; a second signal exits at once with code 130; a stop
 * that outlives `stopTimeoutMs` exits with code 1. Nothing here is module state:
 * handlers are installed on the `proc` passed in and removed on exit.
 */
import { isHubError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** Anything with an orderly start and stop. `stop` must be idempotent. */
export interface Service {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Options for {@link runService}. */
export interface RunOptions {
  log: Logger;
  /** Upper bound for an orderly stop before the process exits anyway. */
  stopTimeoutMs?: number;
  signals?: readonly NodeJS.Signals[];
  proc?: NodeJS.Process;
}

/** Starts `service`, then stops it on the first signal and exits the process. */
export async function runService(service: Service, options: RunOptions): Promise<void> {
  const proc = options.proc ?? process;
  const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
  const { log } = options;
  let stopping = false;

  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn('second signal, exiting now', { signal });
      proc.exit(130);
      return;
    }
    stopping = true;
    log.info('signal received, stopping', { signal });
    const ac = new AbortController();
    // Exits on its own when the stop outlives the bound; cancelled (ac) once the stop completes.
    void sleep(options.stopTimeoutMs ?? 30_000, undefined, { signal: ac.signal }).then(
      () => {
        log.error('orderly stop timed out, exiting');
        proc.exit(1);
      },
      () => undefined,
    );
    service.stop().then(
      () => {
        ac.abort();
        log.info('stopped');
        for (const s of signals) proc.off(s, onSignal);
        proc.exitCode = 0;
        proc.exit(0);
      },
      (err: unknown) => {
        ac.abort();
        log.error('stop failed', { err });
        proc.exit(1);
      },
    );
  };
  for (const s of signals) proc.on(s, onSignal);

  try {
    await service.start();
  } catch (err) {
    // A stop requested during start aborts it: the signal handler exits.
    if (stopping) return;
    // A configuration the process can never run with exits 2, like a refused variable.
    const config = isHubError(err, 'CONFIG_INVALID', 'UNKNOWN_HOST');
    log.error(config ? `invalid configuration: ${err.message}` : 'start failed', { err });
    for (const s of signals) proc.off(s, onSignal);
    await service.stop().catch((e: unknown) => log.warn('stop after a failed start failed too', { err: e }));
    proc.exit(config ? 2 : 1);
  }
}

/**
 * Calls `fn` every `intervalMs` until `signal` aborts; never overlaps calls.
 * Resolves once stopped. `fn` errors go to `onError` and do not stop the loop.
 * With `spacing` k, the wait after a call is at least k times as long as the
 * call took: a loop that is slow on a slow server takes at most 1/(k+1) of
 * its time.
 */
export async function repeat(
  intervalMs: number,
  signal: AbortSignal,
  fn: () => Promise<void>,
  onError: (err: unknown) => void,
  options: { spacing?: number } = {},
): Promise<void> {
  let wait = intervalMs;
  while (!signal.aborted) {
    try {
      await sleep(wait, undefined, { signal });
    } catch {
      return; // the signal aborted the wait: stopping
    }
    const started = Date.now();
    try {
      await fn();
    } catch (err) {
      onError(err);
    }
    wait = Math.max(intervalMs, (options.spacing ?? 0) * (Date.now() - started));
  }
}

/** Runs a config loader; on a configuration error prints it as a JSON log line and exits 2. */
export function loadConfigOrExit<T>(load: () => T, proc: NodeJS.Process = process): T {
  try {
    return load();
  } catch (err) {
    if (isHubError(err, 'CONFIG_INVALID')) {
      // Before any logger exists: one line in the loggers' shape (pino's error level is 50).
      proc.stderr.write(`${JSON.stringify({ level: 50, time: Date.now(), pid: proc.pid, msg: err.message, code: err.code })}\n`);
      proc.exit(2);
    }
    throw err;
  }
}

/** A listening server's closer: stops accepting, cuts every open socket, resolves when closed. Idempotent. */
export type ServerCloser = () => Promise<void>;

/**
 * Tracks `server`'s sockets so that closing it does not wait for idle
 * keep-alive or upgraded connections a peer keeps open.
 */
export function closerFor(server: Server): ServerCloser {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  let closing: Promise<void> | undefined;
  return () => {
    closing ??= new Promise<void>((resolve) => {
      if (!server.listening) return resolve();
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });
    return closing;
  };
}
