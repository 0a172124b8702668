import { setTimeout as sleep } from 'node:timers/promises';
import { describeError } from '../errors/index.js';
import type { EventLog, LogEvent } from '../eventlog/index.js';
import type { Logger } from '../log/index.js';

/** Receives every new event of the log, in order per partition. */
export type TailListener = (events: readonly LogEvent[]) => void;

/** Options for {@link LogTail}. */
export interface LogTailOptions {
  eventLog: EventLog;
  partitions: number;
  pollMinMs: number;
  pollMaxMs: number;
  log: Logger;
  /** Most events per read. */
  batch?: number;
}

/**
 * The one log reader of a gateway process. Follows every partition's head with
 * one query per poll (adaptive backoff while idle, reset by `nudge`) and hands
 * new events to its listeners in memory, so database work does not grow with
 * subscribers.
 *
 * Lifecycle: start (positions = current heads) -> running -> stop (idempotent).
 */
export class LogTail {
  readonly #o: LogTailOptions;
  readonly #positions = new Map<number, number>();
  readonly #listeners = new Set<TailListener>();
  readonly #stop = new AbortController();
  #wait: AbortController | undefined;
  #loop: Promise<void> | undefined;
  #nudged = false;

  constructor(options: LogTailOptions) {
    this.#o = options;
  }

  /** Sequence up to which events have been dispatched, per partition. */
  position(partition: number): number {
    return this.#positions.get(partition) ?? 0;
  }

  async start(): Promise<void> {
    if (this.#loop) return;
    const heads = await Promise.all(Array.from({ length: this.#o.partitions }, (_, p) => this.#o.eventLog.head(p)));
    heads.forEach((h, p) => this.#positions.set(p, h.seq));
    this.#loop = this.#run();
  }

  /** Adds a listener; returns its removal. */
  listen(listener: TailListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Something was just published: poll soon. */
  nudge(): void {
    this.#nudged = true;
    this.#wait?.abort();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    this.#wait?.abort();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const { pollMinMs, pollMaxMs, log } = this.#o;
    let idle = pollMinMs;
    while (!this.#stop.signal.aborted) {
      let got = 0;
      try {
        got = await this.#poll();
      } catch (err) {
        log.warn('log tail read failed', { err: describeError(err) });
        idle = pollMaxMs;
      }
      if (got > 0 || this.#nudged) idle = pollMinMs;
      else idle = Math.min(idle * 2, pollMaxMs);
      this.#nudged = false;
      if (got >= (this.#o.batch ?? 1000)) continue;
      this.#wait = new AbortController();
      const both = AbortSignal.any([this.#wait.signal, this.#stop.signal]);
      await sleep(idle, undefined, { signal: both }).catch(() => undefined);
      this.#wait = undefined;
    }
  }

  async #poll(): Promise<number> {
    const events = await this.#o.eventLog.readAfter(this.#positions, this.#o.batch ?? 1000);
    if (events.length === 0) return 0;
    // Only contiguous sequences advance a partition: a later read fills any hole first.
    const accepted: LogEvent[] = [];
    for (const e of events) {
      if (e.seq !== this.position(e.partition) + 1) continue;
      this.#positions.set(e.partition, e.seq);
      accepted.push(e);
    }
    for (const l of this.#listeners) {
      try {
        l(accepted);
      } catch (err) {
        this.#o.log.error('tail listener failed', { err: describeError(err) });
      }
    }
    return events.length;
  }
}
