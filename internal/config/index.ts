/**
 * Environment parsing shared by every binary.
 *
 * Invariants: configuration is read once at start into a frozen object; every
 * problem names the variable; all problems are reported together so an operator
 * fixes them in one round.
 */
import { HubError } from '../errors/index.js';

/** Why configuration was refused. */
export type ConfigErrorCode = 'CONFIG_INVALID';

/** Raised by {@link EnvReader.done} with one line per bad variable. */
export class ConfigError extends HubError<ConfigErrorCode> {
  /** Names of the variables that were wrong or missing. */
  readonly variables: readonly string[];

  constructor(problems: ReadonlyArray<{ variable: string; problem: string }>) {
    super('CONFIG_INVALID', `invalid configuration: ${problems.map((p) => `${p.variable} ${p.problem}`).join('; ')}`);
    this.variables = problems.map((p) => p.variable);
  }
}

interface IntOptions {
  default?: number;
  min?: number;
  max?: number;
}

/** Typed accessors over an environment; collects problems until {@link EnvReader.done}. */
export interface EnvReader {
  /** `sensitive`: never quote the value in a problem. */
  string(name: string, opts?: { default?: string; pattern?: RegExp; required?: boolean; sensitive?: boolean }): string;
  int(name: string, opts?: IntOptions): number;
  /** Milliseconds; accepts `250`, `250ms`, `5s`, `2m`, `1h`, `7d`. */
  duration(name: string, opts?: IntOptions): number;
  bool(name: string, opts?: { default?: boolean }): boolean;
  oneOf<T extends string>(name: string, values: readonly T[], opts?: { default?: T }): T;
  /** Records a problem found by the caller (e.g. between variables). */
  fail(name: string, problem: string): void;
  /** Throws a {@link ConfigError} naming every bad variable, if any. */
  done(): void;
}

const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `250ms`, `5s`, `2m`, `1h`, `7d` or plain milliseconds. Returns NaN when malformed. */
export function parseDuration(text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m || m[1] === undefined) return Number.NaN;
  return Number(m[1]) * (DURATION_UNITS[m[2] ?? 'ms'] ?? Number.NaN);
}

/** Creates a reader over `env` (usually `process.env`). */
export function envReader(env: Readonly<Record<string, string | undefined>>): EnvReader {
  const problems: Array<{ variable: string; problem: string }> = [];
  const raw = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };
  const bounded = (name: string, value: number, opts: IntOptions, fallback: number): number => {
    if (!Number.isSafeInteger(value)) {
      problems.push({ variable: name, problem: `must be a whole number, got ${JSON.stringify(env[name])}` });
      return fallback;
    }
    if (opts.min !== undefined && value < opts.min) {
      problems.push({ variable: name, problem: `must be >= ${opts.min}, got ${value}` });
    } else if (opts.max !== undefined && value > opts.max) {
      problems.push({ variable: name, problem: `must be <= ${opts.max}, got ${value}` });
    }
    return value;
  };
  const missing = (name: string): number => {
    problems.push({ variable: name, problem: 'is required' });
    return 0;
  };

  return {
    string(name, opts = {}) {
      const v = raw(name) ?? opts.default;
      if (v === undefined) {
        if (opts.required !== false) problems.push({ variable: name, problem: 'is required' });
        return '';
      }
      if (opts.pattern && !opts.pattern.test(v)) {
        problems.push({
          variable: name,
          problem: `must match ${String(opts.pattern)}${opts.sensitive ? '' : `, got ${JSON.stringify(v)}`}`,
        });
      }
      return v;
    },
    int(name, opts = {}) {
      const v = raw(name);
      if (v === undefined) return opts.default ?? missing(name);
      return bounded(name, /^-?\d+$/.test(v) ? Number(v) : Number.NaN, opts, opts.default ?? 0);
    },
    duration(name, opts = {}) {
      const v = raw(name);
      if (v === undefined) return opts.default ?? missing(name);
      const ms = parseDuration(v);
      if (Number.isNaN(ms)) {
        problems.push({ variable: name, problem: `must be a duration like 500ms, 5s, 2m, got ${JSON.stringify(v)}` });
        return opts.default ?? 0;
      }
      return bounded(name, ms, opts, opts.default ?? 0);
    },
    bool(name, opts = {}) {
      const v = raw(name)?.toLowerCase();
      if (v === undefined) return opts.default ?? false;
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['0', 'false', 'no', 'off'].includes(v)) return false;
      problems.push({ variable: name, problem: `must be true or false, got ${JSON.stringify(env[name])}` });
      return opts.default ?? false;
    },
    oneOf(name, values, opts = {}) {
      const v = raw(name) ?? opts.default;
      if (v === undefined) {
        problems.push({ variable: name, problem: `is required (one of ${values.join(', ')})` });
        return values[0] as (typeof values)[number];
      }
      if (!(values as readonly string[]).includes(v)) {
        problems.push({ variable: name, problem: `must be one of ${values.join(', ')}, got ${JSON.stringify(v)}` });
        return (opts.default ?? values[0]) as (typeof values)[number];
      }
      return v as (typeof values)[number];
    },
    fail(name, problem) {
      problems.push({ variable: name, problem });
    },
    done() {
      if (problems.length > 0) throw new ConfigError(problems);
    },
  };
}
