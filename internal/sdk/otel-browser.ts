/**
 * The browser build's stand-in for `@opentelemetry/api` (esbuild aliases it, as it
 * aliases `ws`): the no-op behaviour the API has when no tracer provider is
 * registered, in a few hundred bytes instead of the API's 19 KB. In a browser the SDK
 * records no spans; events still carry their trace context (`eventContext(event)`),
 * and a context handed in is passed on unchanged, as the API's no-op tracer does.
 * Only what internal/tracecontext uses is here; Node builds use the real API.
 */
import type { Context, Span, SpanContext, Tracer, TraceState } from '@opentelemetry/api';

export const SpanKind = { INTERNAL: 0, SERVER: 1, CLIENT: 2, PRODUCER: 3, CONSUMER: 4 } as const;
export const SpanStatusCode = { UNSET: 0, OK: 1, ERROR: 2 } as const;
export const TraceFlags = { NONE: 0, SAMPLED: 1 } as const;

const SPAN = Symbol('outbox-hub span');
const INVALID: SpanContext = { traceId: '0'.repeat(32), spanId: '0'.repeat(16), traceFlags: 0 };

class MapContext implements Context {
  readonly #values: Map<symbol, unknown>;
  constructor(values = new Map<symbol, unknown>()) {
    this.#values = values;
  }
  getValue(key: symbol): unknown {
    return this.#values.get(key);
  }
  setValue(key: symbol, value: unknown): Context {
    return new MapContext(new Map(this.#values).set(key, value));
  }
  deleteValue(key: symbol): Context {
    const next = new Map(this.#values);
    next.delete(key);
    return new MapContext(next);
  }
}

export const ROOT_CONTEXT: Context = new MapContext();

/** A span that records nothing and carries a span context (its parent's), like the API's NonRecordingSpan. */
function nonRecording(sc: SpanContext): Span {
  const span = {
    spanContext: () => sc,
    setAttribute: () => span,
    setAttributes: () => span,
    addEvent: () => span,
    addLink: () => span,
    addLinks: () => span,
    setStatus: () => span,
    updateName: () => span,
    end: () => undefined,
    isRecording: () => false,
    recordException: () => undefined,
  };
  return span;
}

export function isSpanContextValid(sc: SpanContext): boolean {
  return (
    /^[0-9a-f]{32}$/.test(sc.traceId) && sc.traceId !== INVALID.traceId && /^[0-9a-f]{16}$/.test(sc.spanId) && sc.spanId !== INVALID.spanId
  );
}

export function createTraceState(raw: string): TraceState {
  // Carried as written: the browser build only passes a trace state on.
  const state: TraceState = {
    set: () => state,
    unset: () => state,
    get: () => undefined,
    serialize: () => raw,
  };
  return state;
}

export const context = {
  active: (): Context => ROOT_CONTEXT,
  with: <A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    _ctx: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> => fn.call(thisArg, ...args),
};

const tracer: Tracer = {
  startSpan: (_name, _options, ctx) => nonRecording((ctx?.getValue(SPAN) as Span | undefined)?.spanContext() ?? INVALID),
  startActiveSpan: () => {
    throw new Error('startActiveSpan is not available in the browser build');
  },
};

export const trace = {
  getTracer: (): Tracer => tracer,
  getSpan: (ctx: Context): Span | undefined => ctx.getValue(SPAN) as Span | undefined,
  getSpanContext: (ctx: Context): SpanContext | undefined => (ctx.getValue(SPAN) as Span | undefined)?.spanContext(),
  setSpan: (ctx: Context, span: Span): Context => ctx.setValue(SPAN, span),
  setSpanContext: (ctx: Context, sc: SpanContext): Context => ctx.setValue(SPAN, nonRecording(sc)),
};
