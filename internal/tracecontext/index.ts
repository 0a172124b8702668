/**
 * W3C trace context on messages and events, and the messaging spans every part
 * of the hub records, over `@opentelemetry/api` only. Isomorphic (the SDK's
 * browser build uses it): nothing here loads an OpenTelemetry SDK.
 *
 * Invariants:
 * - Without a registered tracer provider every call is the API's no-op: no span
 *   is recorded, and a context handed in is passed on unchanged (the no-op
 *   tracer's span carries its parent's ids), so propagation works through parts
 *   that do not trace.
 * - A context is carried as `traceparent` (version 00, as W3C Trace Context
 *   level 1 writes it) and an optional `tracestate`; one that does not parse is
 *   ignored, as W3C asks, never an error for the message carrying it.
 * - A trace context is not part of a message's identity: a retried publish in
 *   another trace is the same message.
 * - Span names are `{operation} {topic}` with OpenTelemetry's messaging
 *   attributes (`messaging.system` = `outbox_hub`), see {@link messagingAttributes}.
 */
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  context,
  createTraceState,
  isSpanContextValid,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type SpanContext,
  type Tracer,
} from '@opentelemetry/api';

export { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, trace, type Context, type Span, type Tracer };

/** A W3C trace context as a message or event carries it. */
export interface TraceContext {
  readonly traceparent: string;
  readonly tracestate?: string;
}

/** Longest `tracestate` kept (W3C: 32 list members; vendors may drop what is beyond 512 characters). */
export const MAX_TRACESTATE_LENGTH = 512;

/** The instrumentation scope of every span the hub records. */
export const TRACER_NAME = 'outbox-hub';

/** `messaging.system` of the hub's spans. */
export const MESSAGING_SYSTEM = 'outbox_hub';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The tracer the hub records with (the registered provider's, else the API's no-op). */
export function hubTracer(): Tracer {
  return trace.getTracer(TRACER_NAME);
}

/** The span context in `tc`, or undefined when it does not parse (W3C: ignore it). */
export function parseTraceContext(tc: Partial<TraceContext> | undefined): SpanContext | undefined {
  const m = typeof tc?.traceparent === 'string' ? TRACEPARENT.exec(tc.traceparent) : null;
  if (!m) return undefined;
  const sc: SpanContext = {
    traceId: m[1] as string,
    spanId: m[2] as string,
    traceFlags: parseInt(m[3] as string, 16) & TraceFlags.SAMPLED,
    isRemote: true,
  };
  if (!isSpanContextValid(sc)) return undefined;
  const state = tc?.tracestate;
  if (typeof state === 'string' && state.length > 0 && state.length <= MAX_TRACESTATE_LENGTH) sc.traceState = createTraceState(state);
  return sc;
}

/** True when `tc` is a trace context that parses (what validators accept). */
export function isTraceContext(tc: Partial<TraceContext>): boolean {
  if (tc.tracestate !== undefined && (typeof tc.tracestate !== 'string' || tc.tracestate.length > MAX_TRACESTATE_LENGTH)) return false;
  return parseTraceContext(tc) !== undefined;
}

/** `tc` as the parent context of a span (ROOT when absent or invalid). */
export function contextFrom(tc: Partial<TraceContext> | undefined, parent: Context = ROOT_CONTEXT): Context {
  const sc = parseTraceContext(tc);
  return sc ? trace.setSpanContext(parent, sc) : parent;
}

/** The W3C form of a span context, or undefined for an invalid one. */
export function formatTraceContext(sc: SpanContext | undefined): TraceContext | undefined {
  if (!sc || !isSpanContextValid(sc)) return undefined;
  const traceparent = `00-${sc.traceId}-${sc.spanId}-0${(sc.traceFlags & TraceFlags.SAMPLED).toString(16)}`;
  const state = sc.traceState?.serialize();
  return state ? { traceparent, tracestate: state } : { traceparent };
}

/** The trace context of the span active in `ctx` (the caller's by default), or undefined. */
export function traceContextOf(ctx: Context = context.active()): TraceContext | undefined {
  return formatTraceContext(trace.getSpanContext(ctx));
}

/** Fields to spread into a message or event: `traceparent` and `tracestate` when `tc` has them, else nothing. */
export function traceFields(tc: TraceContext | undefined): { traceparent?: string; tracestate?: string } {
  if (!tc) return {};
  return tc.tracestate === undefined ? { traceparent: tc.traceparent } : { traceparent: tc.traceparent, tracestate: tc.tracestate };
}

/** The operations the hub's spans record (`messaging.operation.name`), with their `messaging.operation.type`. */
export const OPERATIONS = Object.freeze({
  /** `outbox.add`: one message written (the application's or the gateway's process). */
  create: 'create',
  /** The SDK's publish. */
  send: 'send',
  /** The gateway's PUBLISH. */
  publish: 'send',
  /** The drainer's append of a message to the log. */
  append: 'send',
  /** The gateway sending an event to subscribers. */
  deliver: 'send',
  /** The SDK's handler. */
  process: 'process',
} as const);

/** One of {@link OPERATIONS}. */
export type Operation = keyof typeof OPERATIONS;

/** What a span knows about the message or event it is about. */
export interface MessageFacts {
  readonly topic: string;
  readonly id?: string;
  readonly partition?: number;
  readonly seq?: number;
  readonly group?: string;
  /** Delivery count of a group delivery (1 for the first). */
  readonly delivery?: number;
}

/**
 * OpenTelemetry messaging attributes (semantic conventions 1.27+) of an
 * operation on one message, plus the hub's own under `outbox_hub.*`.
 */
export function messagingAttributes(op: Operation, m: MessageFacts): Attributes {
  const a: Attributes = {
    'messaging.system': MESSAGING_SYSTEM,
    'messaging.operation.name': op,
    'messaging.operation.type': OPERATIONS[op],
    'messaging.destination.name': m.topic,
  };
  if (m.id !== undefined) a['messaging.message.id'] = m.id;
  if (m.partition !== undefined) a['messaging.destination.partition.id'] = String(m.partition);
  if (m.group !== undefined) a['messaging.consumer.group.name'] = m.group;
  if (m.seq !== undefined) a['outbox_hub.seq'] = m.seq;
  if (m.delivery !== undefined) a['outbox_hub.delivery'] = m.delivery;
  return a;
}

const KINDS: Readonly<Record<Operation, SpanKind>> = {
  create: SpanKind.PRODUCER,
  send: SpanKind.PRODUCER,
  publish: SpanKind.SERVER,
  append: SpanKind.PRODUCER,
  deliver: SpanKind.PRODUCER,
  process: SpanKind.CONSUMER,
};

/**
 * Starts the span of `op` on message `m`: a child of `tc` (a carried context), or,
 * with `link`, the root of a new trace linked to `tc` (a redelivery or replay: its
 * original trace ended long ago). `parent` is the context to start from when `tc` is
 * absent (the caller's active one by default).
 */
export function startMessageSpan(
  op: Operation,
  m: MessageFacts,
  tc: Partial<TraceContext> | undefined,
  options: { link?: boolean; parent?: Context; attributes?: Attributes; tracer?: Tracer } = {},
): Span {
  const tracer = options.tracer ?? hubTracer();
  const attributes = options.attributes ? { ...messagingAttributes(op, m), ...options.attributes } : messagingAttributes(op, m);
  const sc = parseTraceContext(tc);
  const name = `${op} ${m.topic}`;
  if (options.link) {
    const links: Link[] = sc ? [{ context: sc }] : [];
    return tracer.startSpan(name, { kind: KINDS[op], attributes, links, root: true }, ROOT_CONTEXT);
  }
  const parent = sc ? trace.setSpanContext(ROOT_CONTEXT, sc) : (options.parent ?? context.active());
  return tracer.startSpan(name, { kind: KINDS[op], attributes }, parent);
}

/** Ends `span` as failed with `err`. */
export function failSpan(span: Span, err: unknown): void {
  if (err instanceof Error) span.recordException(err);
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  span.end();
}
