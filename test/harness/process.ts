/** Runs the real binaries (from dist/) as child processes and reads their JSON logs. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

/** One JSON log line. */
export type LogLine = Record<string, unknown> & { msg?: string; level?: string };

/** A running binary. */
export interface BinaryProcess {
  readonly child: ChildProcess;
  readonly logs: LogLine[];
  /** Resolves with the first log line (past or future) that matches. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Resolves with the exit code (or signal name). */
  readonly exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
}

/** Path of a compiled binary's entry point. */
export function binaryPath(name: string): string {
  const p = resolve(process.cwd(), 'dist/cmd', name, 'main.js');
  if (!existsSync(p)) throw new Error(`${p} missing: run 'make build' first`);
  return p;
}

/** Starts `dist/cmd/<name>/main.js` with `env` added to this process's environment. */
export function startBinary(name: string, env: Record<string, string>): BinaryProcess {
  return startScript(binaryPath(name), env);
}

/** Starts the Node script at `entry` (e.g. a binary of an installed package) in `cwd`, reading its output as JSON log lines. */
export function startScript(entry: string, env: Record<string, string>, options: { cwd?: string } = {}): BinaryProcess {
  const child = spawn(process.execPath, [entry], {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  });
  const logs: LogLine[] = [];
  const waiters = new Set<{ match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }>();
  const onLine = (text: string): void => {
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      line = { msg: text, level: 'raw' };
    }
    logs.push(line);
    for (const w of waiters) {
      if (w.match(line)) {
        waiters.delete(w);
        w.resolve(line);
      }
    }
  };
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', onLine);
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', onLine);
  const exited = new Promise<number | string>((r) => child.once('exit', (code, signal) => r(code ?? signal ?? -1)));
  return {
    child,
    logs,
    exited,
    kill: (signal = 'SIGTERM') => void child.kill(signal),
    async waitForLog(match, timeoutMs = 20_000) {
      const found = logs.find(match);
      if (found) return found;
      let waiter: { match: (l: LogLine) => boolean; resolve: (l: LogLine) => void } | undefined;
      const ac = new AbortController();
      try {
        return await Promise.race([
          new Promise<LogLine>((resolveLine) => {
            waiter = { match, resolve: resolveLine };
            waiters.add(waiter);
          }),
          exited.then((code) => {
            throw new Error(`process exited (${String(code)}) before the expected log line; last lines: ${JSON.stringify(logs.slice(-5))}`);
          }),
          sleep(timeoutMs, undefined, { signal: ac.signal }).then(() => {
            throw new Error(`timed out after ${timeoutMs} ms waiting for a log line; last lines: ${JSON.stringify(logs.slice(-5))}`);
          }),
        ]);
      } finally {
        ac.abort();
        if (waiter) waiters.delete(waiter);
      }
    },
  };
}

/** Polls `check` until it returns a value other than undefined/false, or throws after `timeoutMs`. */
export async function eventually<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 20_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
}
