import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import cliProgress from 'cli-progress';
import Table from 'cli-table3';
import picocolors from 'picocolors';
import type { Colors } from 'picocolors/types.js';

/** A stream as the process gives it (TTYs say so, and how wide they are). */
export type Terminal = Writable & { isTTY?: boolean; columns?: number };

/** The abort reason when stdout's reader went away (`outbox-hub tail ... | head`): the command stops, quietly. */
export const OUTPUT_CLOSED = 'output closed';

/** What a command may touch: its streams, the environment and the signal that asks it to stop (Ctrl-C, or {@link OUTPUT_CLOSED}). */
export interface CliIO {
  readonly stdout: Terminal;
  readonly stderr: Terminal;
  readonly stdin: Readable;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly signal: AbortSignal;
}

/**
 * Whether to colour `stream`: `--color`/`--no-color` when given, else off with
 * NO_COLOR (https://no-color.org) or TERM=dumb, on with FORCE_COLOR, else only
 * on a terminal.
 */
export function colorEnabled(stream: Terminal, env: CliIO['env'], flag: boolean | undefined): boolean {
  if (flag !== undefined) return flag;
  if (env['NO_COLOR']) return false;
  if (env['FORCE_COLOR'] !== undefined && env['FORCE_COLOR'] !== '0') return true;
  return stream.isTTY === true && env['TERM'] !== 'dumb';
}

/** One column of a table: its heading and whether numbers line up on the right. */
export interface Column {
  readonly head: string;
  readonly align?: 'left' | 'right';
}

/** A progress bar (a no-op where nobody can see it). */
export interface Progress {
  increment(by?: number): void;
  /** Grows the total (work discovered on the way). */
  setTotal(total: number): void;
  stop(): void;
}

const NO_PROGRESS: Progress = Object.freeze({ increment: () => undefined, setTotal: () => undefined, stop: () => undefined });

/** Borderless, aligned columns: what `kubectl get` and `nats stream ls` print. */
const PLAIN_CHARS = {
  top: '',
  'top-mid': '',
  'top-left': '',
  'top-right': '',
  bottom: '',
  'bottom-mid': '',
  'bottom-left': '',
  'bottom-right': '',
  left: '',
  'left-mid': '',
  mid: '',
  'mid-mid': '',
  right: '',
  'right-mid': '',
  middle: '  ',
} as const;

/**
 * Everything a command prints goes through here: human output (aligned
 * tables, colour only where it is wanted) or, with `--json`, one JSON document
 * (or NDJSON for streams) on stdout. Notes, warnings and progress go to
 * stderr, so stdout stays what a script pipes on.
 */
export class Output {
  readonly json: boolean;
  /** Colours for stdout and for stderr, each on only where that stream wants them. */
  readonly c: Colors;
  readonly ce: Colors;
  readonly #io: CliIO;

  constructor(io: CliIO, options: { json: boolean; color: boolean | undefined }) {
    this.#io = io;
    this.json = options.json;
    this.c = picocolors.createColors(colorEnabled(io.stdout, io.env, options.color));
    this.ce = picocolors.createColors(colorEnabled(io.stderr, io.env, options.color));
  }

  /** A line of human output on stdout. */
  line(text = ''): void {
    this.#io.stdout.write(`${text}\n`);
  }

  /** Information for the person at the terminal (stderr: never mixed into what is piped). */
  note(text: string): void {
    this.#io.stderr.write(`${this.ce.dim(text)}\n`);
  }

  warn(text: string): void {
    this.#io.stderr.write(`${this.ce.yellow(`warning: ${text}`)}\n`);
  }

  error(text: string): void {
    this.#io.stderr.write(`${this.ce.red(`outbox-hub: ${text}`)}\n`);
  }

  /** The one JSON document of a `--json` command. */
  document(value: unknown): void {
    this.#io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** One line of an NDJSON stream, waiting while stdout is full (a slow pipe slows the producer, not the memory). */
  async record(value: unknown): Promise<void> {
    if (!this.#io.stdout.write(`${JSON.stringify(value)}\n`))
      await once(this.#io.stdout, 'drain', { signal: this.#io.signal }).catch(() => undefined);
  }

  /** Renders rows under headings as aligned columns (headings bold where colour is on). */
  table(columns: readonly Column[], rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
    const t = new Table({
      head: columns.map((col) => this.c.bold(col.head)),
      colAligns: columns.map((col) => col.align ?? 'left'),
      chars: PLAIN_CHARS,
      style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
    });
    for (const r of rows) t.push(r.map((v) => (typeof v === 'number' ? String(v) : v)));
    return t
      .toString()
      .split('\n')
      .map((l) => l.trimEnd())
      .join('\n');
  }

  /** Prints a table (or `none` when there are no rows). */
  printTable(columns: readonly Column[], rows: ReadonlyArray<ReadonlyArray<string | number>>, none = 'none'): void {
    this.line(rows.length === 0 ? this.c.dim(none) : this.table(columns, rows));
  }

  /**
   * A progress bar with rate and ETA on stderr for work of `total` units, shown
   * only on a terminal (and when there is more than one unit of work).
   */
  progress(label: string, total: number, unit: string): Progress {
    if (this.#io.stderr.isTTY !== true || total <= 1) return NO_PROGRESS;
    const started = Date.now();
    const bar = new cliProgress.SingleBar(
      {
        stream: this.#io.stderr,
        format: `${label} ${this.ce.cyan('{bar}')} {percentage}% | {value}/{total} ${unit} | {rate}/s | ETA {eta_formatted}`,
        hideCursor: true,
        barsize: 24,
        fps: 10,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    let value = 0;
    let max = total;
    const rate = (): string => (value / Math.max(0.001, (Date.now() - started) / 1000)).toFixed(0);
    bar.start(max, 0, { rate: '0' });
    return {
      increment: (by = 1) => {
        value += by;
        if (value > max) bar.setTotal((max = value));
        bar.update(value, { rate: rate() });
      },
      setTotal: (t) => bar.setTotal((max = Math.max(t, value))),
      stop: () => {
        bar.update(value, { rate: rate() });
        bar.stop();
      },
    };
  }
}
