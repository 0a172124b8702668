import { setTimeout as sleep } from 'node:timers/promises';
import { describeError } from '../errors/index.js';
import type { EventLogRepair, EventLogRetention, EventReader, LogEvent } from '../eventlog/index.js';
import type { Logger } from '../log/index.js';

/** Receives every new event of the log, in order per partition. */
export type TailListener = (events: readonly LogEvent[]) => void;

/** What the tail reports about partitions that do not advance. */
export interface TailStallMetrics {
  /** Partitions stalled behind a missing sequence for longer than `stallAfterMs`. */
  stalled: { set(v: number): void };
  /** The missing sequence of a stalled partition. */
  missingSeq: { set(labels: { partition: string }, v: number): void; remove(labels: { partition: string }): void };
}

/** Options for {@link LogTail}. */
export interface LogTailOptions {
  /** Reads and watches the log; reports (and clears) its stalls behind a missing sequence; learns where a trimmed partition starts. */
  eventLog: EventReader & Pick<EventLogRepair, 'findGap' | 'reportStall'> & Pick<EventLogRetention, 'retention'>;
  partitions: number;
  pollMinMs: number;
  pollMaxMs: number;
  log: Logger;
  /** Most events per read. */
  batch?: number;
  /** A partition waiting for a missing sequence this long is reported as stalled. Default 30 s. */
  stallAfterMs?: number;
  /** Who reports stalls to the event log (the gateway's member id). */
  reporter?: string;
  metrics?: TailStallMetrics;
  /** Wake on the log's change stream instead of waiting a poll interval (servers with change streams). */
  watch?: boolean;
  /** Called each time the loop goes round, `ok` false when its read failed: a watchdog's beat. */
  onRound?: (ok: boolean) => void;
}

interface Hole {
  seq: number;
  since: number;
  reported: boolean;
  lastReport: number;
}

/**
 * The one log reader of a gateway process. Follows every partition's head with
 * one query per poll (adaptive backoff while idle, reset by `nudge`) and hands
 * new events to its listeners in memory, so database work does not grow with
 * subscribers.
 *
 * A partition only advances over contiguous sequences. When the next event
 * present is beyond a missing one, the partition waits (a write may be landing);
 * it leaves the shared query so one hole cannot starve the other partitions,
 * and is probed on its own until the hole fills. After `stallAfterMs` the stall
 * is logged with the missing sequence, exported as metrics and reported to the
 * event log, where ops shows it and an operator can fill it (`repairGap`).
 * Filler (`gap`) events advance a partition without reaching listeners.
 *
 * Lifecycle: start (positions = current heads) -> running -> stop (idempotent).
 */
export class LogTail {
  readonly #o: LogTailOptions;
  readonly #positions = new Map<number, number>();
  readonly #holes = new Map<number, Hole>();
  readonly #listeners = new Set<TailListener>();
  readonly #stop = new AbortController();
  #wait: AbortController | undefined;
  #loop: Promise<void> | undefined;
  #nudged = false;
  #lastRead = 0;
  #unwatch: (() => Promise<void>) | undefined;

  constructor(options: LogTailOptions) {
    this.#o = options;
  }

  /** Sequence up to which events have been dispatched, per partition. */
  position(partition: number): number {
    return this.#positions.get(partition) ?? 0;
  }

  /** When the last read of the log succeeded (epoch ms; 0 before the first). */
  get lastReadAt(): number {
    return this.#lastRead;
  }

  /** Partitions waiting for a missing sequence, with that sequence. */
  get holes(): ReadonlyMap<number, number> {
    return new Map([...this.#holes].map(([p, h]) => [p, h.seq]));
  }

  async start(): Promise<void> {
    if (this.#loop) return;
    for (let attempt = 1; ; attempt++) {
      try {
        const heads = await Promise.all(Array.from({ length: this.#o.partitions }, (_, p) => this.#o.eventLog.head(p)));
        heads.forEach((h, p) => this.#positions.set(p, h.seq));
        break;
      } catch (err) {
        // The database went away during start-up: wait for it like the rest of the process does.
        if (this.#stop.signal.aborted) throw err;
        this.#o.log.warn('reading the log heads failed; retrying', { err, attempt });
        await sleep(Math.min(5_000, 250 * 2 ** Math.min(attempt, 5)), undefined, { signal: this.#stop.signal });
      }
    }
    this.#lastRead = Date.now();
    if (this.#o.watch && this.#o.eventLog.watchAppends) {
      this.#unwatch = this.#o.eventLog.watchAppends(
        () => this.nudge(),
        (err) => this.#o.log.warn('log change stream failed; polling meanwhile, reopening it', { err }),
      );
    }
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
    await this.#unwatch?.();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const { pollMinMs, pollMaxMs, log } = this.#o;
    let idle = pollMinMs;
    while (!this.#stop.signal.aborted) {
      let got = 0;
      try {
        got = await this.#poll();
        await this.#probeHoles();
        this.#lastRead = Date.now();
        this.#o.onRound?.(true);
      } catch (err) {
        log.warn('log tail read failed', { err });
        this.#o.onRound?.(false);
        idle = pollMaxMs;
      }
      if (got > 0 || this.#nudged) idle = pollMinMs;
      else idle = Math.min(idle * 2, pollMaxMs);
      this.#nudged = false;
      if (got >= (this.#o.batch ?? 1000)) continue;
      this.#wait = new AbortController();
      const both = AbortSignal.any([this.#wait.signal, this.#stop.signal]);
      // Rejects when woken or stopping: both just end the wait.
      await sleep(idle, undefined, { signal: both }).catch(() => undefined);
      this.#wait = undefined;
    }
  }

  async #poll(): Promise<number> {
    const positions = new Map([...this.#positions].filter(([p]) => !this.#holes.has(p)));
    const events = await this.#o.eventLog.readAfter(positions, this.#o.batch ?? 1000);
    if (events.length === 0) return 0;
    const accepted: LogEvent[] = [];
    for (const e of events) {
      const expected = this.position(e.partition) + 1;
      if (e.seq === expected) {
        this.#positions.set(e.partition, e.seq);
        if (!e.gap) accepted.push(e);
      } else if (e.seq > expected && !this.#holes.has(e.partition)) {
        // The next event present is beyond a missing one: wait for it apart from the others.
        this.#holes.set(e.partition, { seq: expected, since: Date.now(), reported: false, lastReport: 0 });
      }
    }
    this.#dispatch(accepted);
    return events.length;
  }

  /** One bounded read per waiting partition: resumes it when its hole has filled, reports it when it lasts. */
  async #probeHoles(): Promise<void> {
    const { eventLog, log, metrics, reporter } = this.#o;
    const stallAfter = this.#o.stallAfterMs ?? 30_000;
    for (const [partition, hole] of [...this.#holes]) {
      const position = this.position(partition);
      // Not a hole: retention trimmed past the tail's position (it fell that far behind). It
      // goes on from the first event left, and says so; it never waits there.
      const { first } = await eventLog.retention(partition);
      if (first > position + 1) {
        this.#positions.set(partition, first - 1);
        this.#holes.delete(partition);
        metrics?.missingSeq.remove({ partition: String(partition) });
        log.warn('log tail skipped events trimmed by retention before it read them', { partition, from: position + 1, firstSeq: first });
        if (hole.reported && reporter) await eventLog.reportStall(partition, reporter, null);
        continue;
      }
      const gap = await eventLog.findGap(partition, position);
      if (gap === null) {
        this.#holes.delete(partition);
        metrics?.missingSeq.remove({ partition: String(partition) });
        if (hole.reported) {
          log.info('log partition advancing again', { partition, seq: hole.seq });
          if (reporter) await eventLog.reportStall(partition, reporter, null);
        }
        continue;
      }
      const now = Date.now();
      if (now - hole.since < stallAfter) continue;
      if (!hole.reported) {
        hole.reported = true;
        log.error('log partition stalled behind a missing sequence; see the README (repairing a hole)', {
          partition,
          missingSeq: hole.seq,
          missingTo: gap.to,
          waitingMs: now - hole.since,
        });
        metrics?.missingSeq.set({ partition: String(partition) }, hole.seq);
      }
      if (reporter && now - hole.lastReport >= stallAfter) {
        hole.lastReport = now;
        await eventLog.reportStall(partition, reporter, { seq: hole.seq, since: new Date(hole.since) });
      }
    }
    metrics?.stalled.set([...this.#holes.values()].filter((h) => h.reported).length);
  }

  #dispatch(events: readonly LogEvent[]): void {
    if (events.length === 0) return;
    for (const l of this.#listeners) {
      try {
        l(events);
      } catch (err) {
        this.#o.log.error('tail listener failed', { err: describeError(err) });
      }
    }
  }
}
