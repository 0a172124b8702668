import { setTimeout as sleep } from 'node:timers/promises';
import { describeError, isHubError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { isTransientError } from '../mongo/index.js';
import type { AppendResult, EventAppender, EventInput, EventReader, LogEvent } from '../eventlog/index.js';
import type { OutboxStore, PendingMessage } from '../outbox/index.js';
import { topicProblem } from '../topic/index.js';
import { failSpan, formatTraceContext, startMessageSpan, traceFields, type Span, type TraceContext } from '../tracecontext/index.js';
import type { DrainerConfig } from './config.js';
import type { DrainerMetrics } from './metrics.js';

/** What a worker needs from its drainer. */
export interface WorkerDeps {
  outbox: OutboxStore;
  /** Appends under the lease epoch; looks up an id it was told is already logged. */
  eventLog: EventAppender & Pick<EventReader, 'get'>;
  log: Logger;
  metrics: DrainerMetrics;
  config: Pick<DrainerConfig, 'batchSize' | 'pollMinMs' | 'pollMaxMs' | 'maxAttempts' | 'retryBaseMs' | 'leaseTtlMs'>;
  /** Called once when the worker finds itself fenced. */
  onFenced(partition: number): void;
  /** Called each time the loop goes round (a watchdog's beat). */
  onRound?(partition: number): void;
  /** Called when the partition is known to be up to date or a batch went through (readiness). */
  onProgress?(partition: number): void;
  /** Called for each failed database operation. */
  onDbError?(): void;
  /** Told when a batch starts and ends (retention gives way to batches under way). */
  traffic?: { begin(): void; end(): void };
  /** Called with the events an append added, in order (retention's snapshot of compacted topics). */
  onAppended?(partition: number, epoch: number, events: readonly LogEvent[]): Promise<void>;
}

type WorkerState = 'running' | 'finishing' | 'stopped';

/**
 * Drains one partition under one lease epoch.
 *
 * Per batch: one read of the partition's oldest pending messages, one append
 * (in chunks the server lands atomically) and one delete of what was appended. Idle partitions poll with doubling backoff (pollMin..pollMax) unless
 * woken. Lifecycle: running -> finishing (finish the batch, then stop) or
 * stopped (lease lost: stop at once; the epoch is fenced anyway).
 */
export class PartitionWorker {
  readonly partition: number;
  readonly epoch: number;
  readonly #d: WorkerDeps;
  #state: WorkerState = 'running';
  #waitAbort: AbortController | undefined;
  #done: Promise<void> | undefined;
  #woken = false;

  constructor(partition: number, epoch: number, deps: WorkerDeps) {
    this.partition = partition;
    this.epoch = epoch;
    this.#d = deps;
  }

  start(): void {
    this.#done ??= this.#run().catch((err: unknown) => {
      this.#d.log.error('worker crashed', { partition: this.partition, err });
    });
  }

  /** New messages may be pending: cut the idle wait short. */
  wake(): void {
    this.#woken = true;
    this.#waitAbort?.abort();
  }

  /** Finishes the current batch, then stops. */
  async finish(): Promise<void> {
    if (this.#state === 'running') this.#state = 'finishing';
    this.#waitAbort?.abort();
    await this.#done;
    this.#state = 'stopped';
  }

  /** Stops at once (lease lost); an in-flight append is fenced by the new epoch. */
  kill(): void {
    this.#state = 'stopped';
    this.#waitAbort?.abort();
  }

  async #run(): Promise<void> {
    const { config, log } = this.#d;
    let idleMs = config.pollMinMs;
    let failures = 0;
    let transientFailures = 0;
    let single = false;
    let claimed = false;
    while (this.#state === 'running') {
      this.#d.onRound?.(this.partition);
      let batch: PendingMessage[] = [];
      try {
        if (!claimed) {
          // Raise the log's fence before reading: from here on the previous holder cannot commit.
          const started = Date.now();
          const head = await this.#d.eventLog.claim(this.partition, this.epoch);
          const took = Date.now() - started;
          this.#d.metrics.claimSeconds.observe(took / 1000);
          claimed = true;
          log.info('partition claimed', { partition: this.partition, epoch: this.epoch, head, tookMs: took });
          if (took > config.leaseTtlMs / 2) {
            log.error('claiming a partition took more than half the lease TTL: leases will move before work is done; raise LEASE_TTL', {
              tookMs: took,
              leaseTtlMs: config.leaseTtlMs,
            });
          }
        }
        batch = await this.#d.outbox.pending(this.partition, single ? 1 : config.batchSize);
        transientFailures = 0;
        if (batch.length === 0) {
          single = false;
          this.#d.onProgress?.(this.partition);
          await this.#wait(idleMs);
          idleMs = this.#woken ? config.pollMinMs : Math.min(idleMs * 2, config.pollMaxMs);
          this.#woken = false;
          continue;
        }
        idleMs = config.pollMinMs;
        this.#d.traffic?.begin();
        try {
          await this.#drain(batch);
        } finally {
          this.#d.traffic?.end();
        }
        failures = 0;
        single = false;
      } catch (err) {
        if (isHubError(err, 'FENCED')) return this.#onFenced();
        const transient = isTransientError(err);
        this.#d.metrics.batchErrors.inc({ kind: transient ? 'transient' : 'permanent' });
        if (transient) {
          transientFailures++;
          this.#d.onDbError?.();
        }
        log.warn('drain batch failed', { partition: this.partition, size: batch.length, transient, err });
        if (!transient && batch.length > 0) {
          failures++;
          try {
            ({ failures, single } = await this.#onPermanentFailure(batch, err, failures, single));
          } catch (inner) {
            if (isHubError(inner, 'FENCED')) return this.#onFenced();
            // The failure is counted again on the next attempt; the loop must go on.
            log.warn('recording a failed message failed', { partition: this.partition, err: inner });
          }
        }
        // Transient failures (an outage) back off up to 5 s, repeated permanent ones up to 30 s.
        const backoff = transient ? Math.min(config.retryBaseMs * 2 ** Math.min(transientFailures, 10), 5_000) : 0;
        await this.#wait(Math.max(backoff, Math.min(config.retryBaseMs * 2 ** Math.min(failures, 10), 30_000)));
      }
    }
  }

  #onFenced(): void {
    this.#d.metrics.fenced.inc();
    this.#d.log.warn('fenced: a newer lease epoch holds this partition', { partition: this.partition, epoch: this.epoch });
    this.#state = 'stopped';
    this.#d.onFenced(this.partition);
  }

  /**
   * A batch that keeps failing is retried one message at a time to find the
   * culprit; a single message that keeps failing is moved to `dead` so its
   * partition goes on (later messages of its key overtake it).
   */
  async #onPermanentFailure(
    batch: PendingMessage[],
    err: unknown,
    failures: number,
    single: boolean,
  ): Promise<{ failures: number; single: boolean }> {
    const { maxAttempts } = this.#d.config;
    if (batch.length > 1) return failures >= maxAttempts ? { failures: 0, single: true } : { failures, single };
    const message = batch[0] as PendingMessage;
    const dead = message.attempts + 1 >= maxAttempts;
    await this.#d.eventLog.checkFence(this.partition, this.epoch);
    await this.#d.outbox.recordFailure(message, describeError(err), dead);
    if (dead) {
      this.#d.metrics.deadLettered.inc();
      this.#d.log.error('message moved to dead', { partition: this.partition, id: message.id, err: describeError(err) });
      return { failures: 0, single: false };
    }
    return { failures, single };
  }

  async #drain(batch: PendingMessage[]): Promise<void> {
    const { eventLog, outbox, metrics } = this.#d;
    const events: EventInput[] = [];
    const invalid: Array<{ message: PendingMessage; problem: string }> = [];
    // An `append` span per message that carries a trace context, a child of its writer's span;
    // the event carries the span's context on (the writer's when this process does not trace).
    const spans = new Map<string, Span>();
    for (const m of batch) {
      const problem = topicProblem(m.topic);
      if (problem !== undefined) {
        invalid.push({ message: m, problem });
        continue;
      }
      const carried: TraceContext | undefined =
        m.traceparent === undefined
          ? undefined
          : { traceparent: m.traceparent, ...(m.tracestate === undefined ? {} : { tracestate: m.tracestate }) };
      let trace = carried;
      if (carried) {
        const span = startMessageSpan('append', { topic: m.topic, id: m.id, partition: this.partition }, carried, {
          attributes: { 'messaging.batch.message_count': batch.length },
        });
        spans.set(m.id, span);
        trace = formatTraceContext(span.spanContext()) ?? carried;
      }
      events.push({
        id: m.id,
        topic: m.topic,
        key: m.key,
        payload: m.payload,
        headers: m.headers,
        createdAt: m.createdAt,
        ...(m.digest === undefined ? {} : { digest: m.digest }),
        ...(m.causedBy === undefined ? {} : { causedBy: m.causedBy }),
        ...(m.tags === undefined ? {} : { tags: m.tags }),
        ...traceFields(trace),
      });
    }
    if (invalid.length > 0) {
      // Written around the library (e.g. by hand): no retry can fix these.
      await eventLog.checkFence(this.partition, this.epoch);
      for (const bad of invalid) {
        await outbox.recordFailure(bad.message, `invalid message: ${bad.problem}`, true);
        metrics.deadLettered.inc();
      }
    }
    if (events.length === 0) return;
    let result: AppendResult;
    try {
      result = await eventLog.append(this.partition, this.epoch, events);
    } catch (err) {
      for (const s of spans.values()) failSpan(s, err);
      throw err;
    }
    for (const e of result.appended) spans.get(e.id)?.setAttribute('outbox_hub.seq', e.seq).end();
    for (const id of result.duplicates) spans.get(id)?.setAttribute('outbox_hub.duplicate', true).end();
    const done = new Set([...result.appended.map((e) => e.id), ...result.duplicates]);
    // A duplicate is normally our own earlier append; one with other content reused an id: never drop it silently.
    for (const id of result.duplicates) {
      const [mine, logged] = [batch.find((m) => m.id === id), await eventLog.get(id)];
      if (!mine || !logged || sameContent(mine, logged)) continue;
      done.delete(id);
      await eventLog.checkFence(this.partition, this.epoch);
      await outbox.recordFailure(mine, `DUPLICATE_ID: event ${id} is already in the log with other content`, true);
      metrics.deadLettered.inc();
    }
    await outbox.remove(
      this.partition,
      batch.filter((m) => done.has(m.id)),
    );
    if (result.appended.length > 0 && this.#d.onAppended) {
      // Fresh latest values for compacted topics. A failure leaves the snapshot's watermark
      // where it was, and the next retention round catches up from there: logged, not retried.
      await this.#d.onAppended(this.partition, this.epoch, result.appended).catch((err: unknown) =>
        this.#d.log.warn('updating the latest-value snapshot failed; the next retention round catches up', {
          partition: this.partition,
          err: describeError(err),
        }),
      );
    }
    metrics.published.inc(result.appended.length);
    if (result.duplicates.length > 0) metrics.duplicates.inc(result.duplicates.length);
    for (const e of result.appended) metrics.commitToPublish.observe((e.publishedAt.getTime() - e.createdAt.getTime()) / 1000);
    this.#d.onProgress?.(this.partition);
  }

  async #wait(ms: number): Promise<void> {
    if (this.#state !== 'running' || this.#woken) return;
    this.#waitAbort = new AbortController();
    try {
      await sleep(ms, undefined, { signal: this.#waitAbort.signal });
    } catch {
      // woken or stopping
    } finally {
      this.#waitAbort = undefined;
    }
  }
}

function sameContent(mine: PendingMessage, logged: LogEvent): boolean {
  return logged.topic === mine.topic && logged.key === mine.key && JSON.stringify(logged.payload) === JSON.stringify(mine.payload);
}
