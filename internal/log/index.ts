/**
 * Structured logging on pino, in the shape log tooling expects: one JSON object
 * per line with numeric `level`, `time` (epoch ms), `pid`, `hostname`, `msg`,
 * and `err` serialised with its type, code, message, stack and cause.
 *
 * Invariants:
 * - Loggers hold no module state; a child shares its root's output, secret
 *   list and repeat limiter.
 * - Every key appears once per line: a child's fields replace its parent's
 *   same-named ones, a line's fields replace bound ones, and a field named like
 *   a key pino writes itself (`level`, `time`, `msg`) is written as
 *   `levelField`, `timeField`, `msgField`. Bound fields are therefore kept here
 *   and merged per line, not given to pino's child(), which appends a child's
 *   bindings to its parent's and so would write a re-bound key twice.
 * - Every line is scrubbed before it is written: URL credentials
 *   (`scheme://user:password@`) and the configured secret values become `***`,
 *   whatever field or error message carries them.
 * - Repeated identical warnings and errors (same level, message and error) are
 *   written once per window; the rest are counted and summarised in one line
 *   ("37 more in the last 10 s"), so an outage cannot flood the logs.
 */
import { hostname } from 'node:os';
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';

/** Log severities, lowest first. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * Extra key/values for one line. `err` (an Error) is serialised with its type, code, stack and cause.
 * A key already bound by the logger takes the line's value; an `undefined` value leaves the bound one.
 */
export type LogFields = Readonly<Record<string, unknown>>;

/** The logging port used by every component. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line; a field already bound takes its new value. */
  child(fields: LogFields): Logger;
}

/** Every log level, lowest first. */
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go (each ends with a newline); defaults to stdout, written synchronously. */
  write?: (line: string) => void;
  fields?: LogFields;
  /** Values scrubbed from every line, e.g. the database password and tokens (shorter than 4 characters: ignored). */
  secrets?: readonly string[];
  /** Window in which repeated identical warnings and errors collapse. Default 10 s; 0 writes every one. */
  repeatWindowMs?: number;
}

/** Default window of the repeat limiter. */
export const REPEAT_WINDOW_MS = 10_000;
/** Bound on the distinct repeated lines tracked at once (the oldest are summarised and forgotten beyond it). */
const MAX_TRACKED = 500;

interface SerializedError {
  type: string;
  message: string;
  code?: unknown;
  stack?: string;
  cause?: SerializedError | string;
}

/** An error as a plain object: type, code, message, stack, cause (recursively, bounded). */
export function serializeError(err: unknown, depth = 0): SerializedError | string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  return {
    type: err.constructor?.name ?? err.name,
    message: err.message,
    ...(code === undefined ? {} : { code }),
    ...(err.stack ? { stack: err.stack } : {}),
    ...(err.cause !== undefined && depth < 4 ? { cause: serializeError(err.cause, depth + 1) } : {}),
  };
}

const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/[^:/@\s"]+:)[^@\s"/]+@/gi;

/** Replaces URL credentials and `secrets` in `text` with `***`. */
export function scrub(text: string, secrets: readonly string[] = []): string {
  let out = text.replace(URL_CREDENTIALS, '$1***@');
  for (const s of secrets) {
    if (s.length < 4) continue;
    out = out.split(s).join('***');
    const escaped = JSON.stringify(s).slice(1, -1);
    if (escaped !== s) out = out.split(escaped).join('***');
  }
  return out;
}

/** Writes one line with a logger's bound fields, past the repeat limiter. */
type Emit = (level: 'warn' | 'error', msg: string, fields: LogFields) => void;

interface Repeat {
  level: 'warn' | 'error';
  msg: string;
  since: number;
  suppressed: number;
  /** The first occurrence's logger, so the summary carries its fields. */
  emit: Emit;
}

/** Collapses repeated identical warnings and errors; shared by a root logger and its children. */
class RepeatLimiter {
  readonly #windowMs: number;
  readonly #repeats = new Map<string, Repeat>();
  #timer: NodeJS.Timeout | undefined;

  constructor(windowMs: number) {
    this.#windowMs = windowMs;
  }

  /** True when the line should be written now. */
  admit(emit: Emit, level: 'warn' | 'error', msg: string, fields: LogFields | undefined): boolean {
    if (this.#windowMs <= 0) return true;
    const key = `${level}\u0000${msg}\u0000${errorKey(fields?.['err'])}`;
    const now = Date.now();
    const r = this.#repeats.get(key);
    if (r && now - r.since < this.#windowMs) {
      r.suppressed++;
      this.#arm();
      return false;
    }
    if (r) this.#summarise(r, now);
    this.#repeats.delete(key);
    this.#repeats.set(key, { level, msg, since: now, suppressed: 0, emit });
    if (this.#repeats.size > MAX_TRACKED) {
      const [oldestKey, oldest] = this.#repeats.entries().next().value as [string, Repeat];
      this.#summarise(oldest, now);
      this.#repeats.delete(oldestKey);
    }
    return true;
  }

  #summarise(r: Repeat, now: number): void {
    if (r.suppressed === 0) return;
    const seconds = Math.max(1, Math.round((now - r.since) / 1000));
    r.emit(r.level, `${r.msg} (${r.suppressed} more in the last ${seconds} s)`, { repeated: r.suppressed, windowMs: now - r.since });
    r.suppressed = 0;
  }

  /** Writes the summaries of windows that ended without a new occurrence. */
  #sweep(): void {
    const now = Date.now();
    for (const [key, r] of this.#repeats) {
      if (now - r.since < this.#windowMs) continue;
      this.#summarise(r, now);
      this.#repeats.delete(key);
    }
    if (![...this.#repeats.values()].some((r) => r.suppressed > 0) && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #arm(): void {
    if (this.#timer) return;
    // Unref'd, and cleared as soon as nothing is pending: it never keeps a process alive.
    this.#timer = setInterval(() => this.#sweep(), this.#windowMs);
    this.#timer.unref();
  }
}

function errorKey(err: unknown): string {
  if (err instanceof Error) return `${err.constructor?.name}:${String((err as { code?: unknown }).code)}:${err.message}`;
  if (err === undefined) return '';
  return typeof err === 'string' ? err : JSON.stringify(err);
}

const PINO_LEVELS: Readonly<Record<LogLevel, string>> = { debug: 'debug', info: 'info', warn: 'warn', error: 'error' };

/** Keys pino writes on every line itself: a field of the same name would repeat them. */
const LINE_KEYS = ['level', 'time', 'msg'] as const;

/** A logger's bound fields, without a prototype so that any key (`__proto__` too) is plain data. */
type Bound = Readonly<Record<string, unknown>>;

/** `base` with `fields` laid over it: a key in both keeps its place and takes the new value, unless that is undefined. */
function overlay(base: Bound, fields: LogFields | undefined): Bound {
  const out: Record<string, unknown> = Object.assign(Object.create(null) as Record<string, unknown>, base);
  if (fields) {
    for (const key of Object.keys(fields)) {
      const value = fields[key];
      if (value !== undefined) out[key] = value;
    }
  }
  return out;
}

/** One line's fields: the bound ones overlaid with the line's, each key once, none named like pino's own. */
function lineFields(bound: Bound, fields: LogFields | undefined): Record<string, unknown> {
  const out = overlay(bound, fields) as Record<string, unknown>;
  for (const key of LINE_KEYS) {
    if (!Object.hasOwn(out, key)) continue;
    let alias = `${key}Field`;
    while (Object.hasOwn(out, alias)) alias += '_';
    out[alias] = out[key];
    delete out[key];
  }
  return out;
}

/** Creates a root logger. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const secrets = [...(options.secrets ?? [])];
  const destination: DestinationStream = options.write
    ? { write: (line: string) => options.write?.(line) }
    : pino.destination({ fd: 1, sync: true });
  const p = pino(
    {
      level: PINO_LEVELS[options.level ?? 'info'],
      // pid and hostname are bound fields like any other (see lineFields), so pino's base is empty.
      base: null,
      messageKey: 'msg',
      timestamp: pino.stdTimeFunctions.epochTime,
      serializers: { err: (e: unknown) => serializeError(e) },
      hooks: { streamWrite: (s: string) => scrub(s, secrets) },
    },
    destination,
  );
  const limiter = new RepeatLimiter(options.repeatWindowMs ?? REPEAT_WINDOW_MS);
  return wrap(p, overlay({ pid: process.pid, hostname: hostname() }, options.fields), limiter);
}

function wrap(p: PinoLogger, bound: Bound, limiter: RepeatLimiter): Logger {
  const emit = (level: LogLevel, msg: string, fields: LogFields | undefined): void => p[level](lineFields(bound, fields), msg);
  const write = (level: LogLevel, msg: string, fields?: LogFields): void => {
    // Checked first so that a disabled level costs no merge and no limiter entry.
    if (!p.isLevelEnabled(level)) return;
    if ((level === 'warn' || level === 'error') && !limiter.admit(emit, level, msg, fields)) return;
    emit(level, msg, fields);
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (fields) => wrap(p, overlay(bound, fields), limiter),
  };
}

/** A logger that drops everything (for library users who pass none). */
export const silentLogger: Logger = Object.freeze({
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
});
