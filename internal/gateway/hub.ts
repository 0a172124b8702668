import type { LogEvent } from '../eventlog/index.js';
import { TopicIndex, type TopicPattern } from '../topic/index.js';
import type { WireEvent } from '../protocol/index.js';
import {
  formatTraceContext,
  startMessageSpan,
  traceFields,
  type MessageFacts,
  type Span,
  type TraceContext,
} from '../tracecontext/index.js';
import type { LogTail } from './tail.js';

/** A live (group-less) subscription as the hub sees it. */
export interface LiveSubscription {
  readonly pattern: TopicPattern;
  /** Only events carrying every one of these tags (checked before the event is offered). */
  readonly tags?: readonly string[];
  offer(event: LogEvent, json: string): void;
}

/** True when `e` carries every tag of `tags`. */
export function hasTags(e: LogEvent, tags: readonly string[] | undefined): boolean {
  if (tags === undefined) return true;
  const have = e.tags;
  return have !== undefined && tags.every((t) => have.includes(t));
}

/** The trace context `e` was stored with, if any. */
export function storedTrace(e: LogEvent): TraceContext | undefined {
  if (e.traceparent === undefined) return undefined;
  return e.tracestate === undefined ? { traceparent: e.traceparent } : { traceparent: e.traceparent, tracestate: e.tracestate };
}

/**
 * The wire form of an event, carrying `trace` (the delivering span's context) instead of
 * the stored trace context when given.
 */
export function toWire(e: LogEvent, trace?: TraceContext): WireEvent {
  return {
    id: e.id,
    topic: e.topic,
    key: e.key,
    partition: e.partition,
    seq: e.seq,
    payload: e.payload,
    headers: e.headers,
    createdAt: e.createdAt.toISOString(),
    publishedAt: e.publishedAt.toISOString(),
    ...(e.causedBy === undefined ? {} : { causedBy: e.causedBy }),
    ...(e.tags === undefined ? {} : { tags: e.tags }),
    ...traceFields(trace ?? storedTrace(e)),
  };
}

/**
 * The `deliver` span of `e` (a child of its stored context, or with `link` the root of a new
 * trace linked to it) and the event's JSON carrying the span's context. Events stored without
 * a trace context get no span. Without a tracer provider the span is the API's no-op and the
 * stored context goes out unchanged.
 */
export function deliverSpan(
  e: LogEvent,
  facts: Omit<MessageFacts, 'topic'>,
  link: boolean,
  attributes?: Record<string, string | number | boolean>,
): { json: string; span: Span | undefined } {
  const stored = storedTrace(e);
  if (!stored) return { json: JSON.stringify(toWire(e)), span: undefined };
  const span = startMessageSpan('deliver', { topic: e.topic, id: e.id, partition: e.partition, seq: e.seq, ...facts }, stored, {
    link,
    ...(attributes === undefined ? {} : { attributes }),
  });
  return { json: JSON.stringify(toWire(e, formatTraceContext(span.spanContext()) ?? stored)), span };
}

/**
 * In-memory fan-out of the tail to live subscriptions. Matching goes through a
 * {@link TopicIndex}, tag filters are checked before an event is offered, and each
 * event is serialised once, however many subscribers receive it: one `deliver`
 * span per event (not per subscriber) whose context every subscriber continues.
 */
export class LiveHub {
  readonly #index = new TopicIndex<LiveSubscription>();
  readonly #unlisten: () => void;

  constructor(tail: LogTail) {
    this.#unlisten = tail.listen((events) => {
      if (this.#index.size === 0) return;
      for (const e of events) {
        const subs = this.#index.match(e.topic);
        if (subs.size === 0) continue;
        let out: { json: string; span: Span | undefined } | undefined;
        let offered = 0;
        for (const s of subs) {
          if (!hasTags(e, s.tags)) continue;
          out ??= deliverSpan(e, {}, false);
          s.offer(e, out.json);
          offered++;
        }
        out?.span?.setAttribute('outbox_hub.subscribers', offered).end();
      }
    });
  }

  get size(): number {
    return this.#index.size;
  }

  add(sub: LiveSubscription): void {
    this.#index.add(sub.pattern, sub);
  }

  remove(sub: LiveSubscription): void {
    this.#index.remove(sub.pattern, sub);
  }

  close(): void {
    this.#unlisten();
  }
}
