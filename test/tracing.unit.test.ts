/**
 * Causation, tags and trace context without a server (issue 20): W3C parsing and
 * formatting, what the outbox's validation accepts and refuses, the protocol's new
 * fields, the live hub's tag filter and `deliver` span, and the binaries' tracing
 * settings. Spans are recorded by an in-memory exporter on a real provider; the
 * no-provider case is checked first, as every application without an SDK sees it.
 */
import { context, trace, SpanKind, type SpanContext } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { ConfigError, envReader } from '../internal/config/index.js';
import type { LogEvent } from '../internal/eventlog/index.js';
import { MemoryEventLog } from '../internal/eventlog/index.js';
import { toWireEvent } from '../internal/gateway/index.js';
import { LiveHub } from '../internal/gateway/hub.js';
import type { LogTail } from '../internal/gateway/tail.js';
import { MAX_CAUSED_BY, MAX_TAGS, OutboxError, validateMessage } from '../internal/outbox/index.js';
import { parseClientFrame } from '../internal/protocol/index.js';
import { TopicPattern } from '../internal/topic/index.js';
import { formatTraceContext, parseTraceContext, startMessageSpan, traceContextOf } from '../internal/tracecontext/index.js';
import { readTracingSettings } from '../internal/tracing/index.js';

const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('W3C trace context', () => {
  it('parses and formats traceparent and tracestate, and ignores what does not parse', () => {
    const sc = parseTraceContext({ traceparent: TP, tracestate: 'vendor=abc,other=1' }) as SpanContext;
    expect(sc).toMatchObject({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1, isRemote: true });
    expect(formatTraceContext(sc)).toEqual({ traceparent: TP, tracestate: 'vendor=abc,other=1' });
    for (const bad of [
      '00-00000000000000000000000000000000-00f067aa0ba902b7-01', // all-zero trace id
      '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01', // all-zero span id
      '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01', // upper case
      'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7',
      '',
    ]) {
      expect(parseTraceContext({ traceparent: bad })).toBeUndefined();
    }
    // Unknown flags are dropped, only `sampled` is kept.
    expect(formatTraceContext(parseTraceContext({ traceparent: TP.replace(/01$/, 'ff') }))?.traceparent).toBe(TP);
  });

  it('passes a context through unchanged where no tracer provider is registered', () => {
    const span = startMessageSpan('append', { topic: 'orders.created' }, { traceparent: TP });
    expect(span.isRecording()).toBe(false);
    expect(formatTraceContext(span.spanContext())).toEqual({ traceparent: TP });
    // A new trace (a redelivery) has nothing to carry without a provider: the caller keeps the stored one.
    expect(
      formatTraceContext(startMessageSpan('deliver', { topic: 't' }, { traceparent: TP }, { link: true }).spanContext()),
    ).toBeUndefined();
    expect(traceContextOf()).toBeUndefined();
  });
});

describe('with a tracer provider', () => {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  const manager = new AsyncLocalStorageContextManager();
  beforeAll(() => {
    context.setGlobalContextManager(manager.enable());
    trace.setGlobalTracerProvider(provider);
  });
  afterAll(async () => {
    await provider.shutdown();
    trace.disable();
    context.disable();
  });
  beforeEach(() => exporter.reset());
  const finished = (name: string): ReadableSpan => {
    const s = exporter.getFinishedSpans().find((x) => x.name === name);
    if (!s)
      throw new Error(
        `no span ${name}: ${exporter
          .getFinishedSpans()
          .map((x) => x.name)
          .join(', ')}`,
      );
    return s;
  };

  it('starts a child of a carried context with messaging attributes, or a new trace linked to it', () => {
    const child = startMessageSpan(
      'deliver',
      { topic: 'orders.created', id: 'e1', partition: 3, seq: 7, group: 'mailer', delivery: 1 },
      { traceparent: TP },
    );
    child.end();
    const c = finished('deliver orders.created');
    expect(c.spanContext().traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(c.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
    expect(c.kind).toBe(SpanKind.PRODUCER);
    expect(c.attributes).toEqual({
      'messaging.system': 'outbox_hub',
      'messaging.operation.name': 'deliver',
      'messaging.operation.type': 'send',
      'messaging.destination.name': 'orders.created',
      'messaging.message.id': 'e1',
      'messaging.destination.partition.id': '3',
      'messaging.consumer.group.name': 'mailer',
      'outbox_hub.seq': 7,
      'outbox_hub.delivery': 1,
    });
    exporter.reset();
    startMessageSpan('deliver', { topic: 'orders.created', delivery: 2 }, { traceparent: TP }, { link: true }).end();
    const linked = finished('deliver orders.created');
    expect(linked.spanContext().traceId).not.toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(linked.parentSpanContext).toBeUndefined();
    expect(linked.links.map((l) => [l.context.traceId, l.context.spanId])).toEqual([
      ['4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7'],
    ]);
  });

  it('fans an event out with one deliver span whose context every matching subscriber gets, and filters by tags first', () => {
    let listener: ((events: readonly LogEvent[]) => void) | undefined;
    const tail = { listen: (l: (events: readonly LogEvent[]) => void) => ((listener = l), () => undefined) } as unknown as LogTail;
    const hub = new LiveHub(tail);
    const got: Record<string, string[]> = { all: [], eu: [], euVip: [] };
    hub.add({ pattern: TopicPattern.compile('orders.*'), offer: (_e, json) => got['all']?.push(json) });
    hub.add({ pattern: TopicPattern.compile('orders.*'), tags: ['eu'], offer: (_e, json) => got['eu']?.push(json) });
    hub.add({ pattern: TopicPattern.compile('orders.**'), tags: ['eu', 'vip'], offer: (_e, json) => got['euVip']?.push(json) });
    const at = new Date();
    const event = (id: string, tags?: string[]): LogEvent => ({
      id,
      topic: 'orders.created',
      key: id,
      partition: 0,
      seq: 1,
      payload: {},
      headers: {},
      createdAt: at,
      publishedAt: at,
      traceparent: TP,
      ...(tags === undefined ? {} : { tags }),
    });
    listener?.([event('plain'), event('eu', ['eu']), event('both', ['vip', 'eu', 'x'])]);
    const ids = (list: string[] | undefined): string[] => (list ?? []).map((j) => (JSON.parse(j) as { id: string }).id);
    expect(ids(got['all'])).toEqual(['plain', 'eu', 'both']);
    expect(ids(got['eu'])).toEqual(['eu', 'both']);
    expect(ids(got['euVip'])).toEqual(['both']);
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => [s.name, s.attributes['outbox_hub.subscribers']])).toEqual([
      ['deliver orders.created', 1],
      ['deliver orders.created', 2],
      ['deliver orders.created', 3],
    ]);
    const wire = JSON.parse(got['euVip']?.[0] as string) as { traceparent: string; tags: string[] };
    expect(wire.traceparent.split('-')[2]).toBe(spans[2]?.spanContext().spanId);
    expect(wire.tags).toEqual(['vip', 'eu', 'x']);
    hub.close();
  });
});

describe('causes and tags on messages', () => {
  const base = { topic: 'orders.created', payload: { n: 1 } };
  const code = (input: object): string | undefined => {
    try {
      validateMessage(input, 0, 1024, Date.now());
      return undefined;
    } catch (err) {
      return (err as OutboxError).code;
    }
  };

  it('keeps valid causes, tags and trace context, and leaves absent or empty ones out', () => {
    const m = validateMessage(
      { ...base, causedBy: ['o-1:created'], tags: ['tenant=acme', 'eu/west'], traceparent: TP, tracestate: 'a=b' },
      0,
      1024,
      0,
    );
    expect(m).toMatchObject({ causedBy: ['o-1:created'], tags: ['tenant=acme', 'eu/west'], traceparent: TP, tracestate: 'a=b' });
    const plain = validateMessage({ ...base, causedBy: [], tags: [] }, 0, 1024, 0);
    expect(Object.keys(plain).sort()).toEqual(['headers', 'id', 'key', 'payload', 'topic']);
  });

  it('refuses bad causes, tags and trace contexts with their own codes', () => {
    expect(code({ ...base, causedBy: 'o-1' })).toBe('INVALID_CAUSED_BY');
    expect(code({ ...base, causedBy: ['has space'] })).toBe('INVALID_CAUSED_BY');
    expect(code({ ...base, causedBy: ['a', 'a'] })).toBe('INVALID_CAUSED_BY');
    expect(code({ ...base, causedBy: Array.from({ length: MAX_CAUSED_BY + 1 }, (_, i) => `e${i}`) })).toBe('INVALID_CAUSED_BY');
    expect(code({ ...base, tags: ['ok', 'not ok'] })).toBe('INVALID_TAGS');
    expect(code({ ...base, tags: ['x'.repeat(65)] })).toBe('INVALID_TAGS');
    expect(code({ ...base, tags: Array.from({ length: MAX_TAGS + 1 }, (_, i) => `t${i}`) })).toBe('INVALID_TAGS');
    expect(code({ ...base, tags: [1] })).toBe('INVALID_TAGS');
    expect(code({ ...base, traceparent: 'nope' })).toBe('INVALID_TRACE_CONTEXT');
    expect(code({ ...base, tracestate: 'a=b' })).toBe('INVALID_TRACE_CONTEXT');
    expect(code({ ...base, traceparent: TP, tracestate: 'x'.repeat(513) })).toBe('INVALID_TRACE_CONTEXT');
  });

  it('parses PUBLISH extras by shape and SUBSCRIBE tag filters for live subscriptions only', () => {
    expect(
      parseClientFrame(JSON.stringify({ op: 'PUBLISH', id: '1', topic: 't', payload: 1, causedBy: ['a'], tags: ['b'], traceparent: TP })),
    ).toMatchObject({
      causedBy: ['a'],
      tags: ['b'],
      traceparent: TP,
    });
    expect(parseClientFrame(JSON.stringify({ op: 'PUBLISH', id: '1', topic: 't', payload: 1, tags: 'b' }))).toMatchObject({
      code: 'INVALID_PAYLOAD',
    });
    expect(parseClientFrame(JSON.stringify({ op: 'SUBSCRIBE', id: '1', sub: 's', topic: 't', tags: ['eu', 'eu', 'vip'] }))).toMatchObject({
      tags: ['eu', 'vip'],
    });
    expect(parseClientFrame(JSON.stringify({ op: 'SUBSCRIBE', id: '1', sub: 's', topic: 't', tags: ['eu'], group: 'g' }))).toMatchObject({
      group: 'g',
      tags: ['eu'],
    });
    expect(parseClientFrame(JSON.stringify({ op: 'SUBSCRIBE', id: '1', sub: 's', topic: 't', tags: [] }))).toMatchObject({
      code: 'BAD_FRAME',
    });
    expect(parseClientFrame(JSON.stringify({ op: 'SUBSCRIBE', id: '1', sub: 's', topic: 't', tags: ['a b'] }))).toMatchObject({
      code: 'BAD_FRAME',
    });
  });

  it('stores causes and tags with the event, delivers them, and finds the events one event caused', async () => {
    const log = new MemoryEventLog();
    await log.claim(0, 1);
    const at = new Date();
    const input = (id: string, causedBy?: string[]) => ({
      id,
      topic: 'orders.created',
      key: null,
      payload: {},
      headers: {},
      createdAt: at,
      ...(causedBy ? { causedBy } : {}),
    });
    await log.append(0, 1, [input('order'), input('mail', ['order']), input('invoice', ['order', 'other']), input('unrelated')]);
    expect((await log.causedBy('order', 10)).map((e) => e.id)).toEqual(['mail', 'invoice']);
    expect((await log.causedBy('order', 1)).map((e) => e.id)).toEqual(['mail']);
    const wire = toWireEvent((await log.get('invoice')) as LogEvent);
    expect(wire.causedBy).toEqual(['order', 'other']);
    expect('tags' in wire || 'traceparent' in wire).toBe(false);
  });
});

describe('tracing settings', () => {
  const read = (env: Record<string, string>) => {
    const r = envReader(env);
    const s = readTracingSettings(r, env);
    r.done();
    return s;
  };

  it('is off without an OTLP endpoint, or when disabled, and on with one', () => {
    expect(read({}).enabled).toBe(false);
    expect(read({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toMatchObject({
      enabled: true,
      sampler: 'parentbased_always_on',
    });
    expect(read({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }).enabled).toBe(true);
    expect(read({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }).enabled).toBe(false);
    expect(read({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' }).enabled).toBe(false);
    expect(read({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' })).toMatchObject({ ratio: 0.25 });
  });

  it('refuses what the binaries cannot honour, naming the variable', () => {
    expect(() => read({ OTEL_TRACES_SAMPLER: 'sometimes' })).toThrow(ConfigError);
    expect(() => read({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' })).toThrow(/OTEL_TRACES_SAMPLER_ARG/);
    expect(() => read({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toThrow(
      /OTEL_EXPORTER_OTLP_PROTOCOL/,
    );
    expect(() => read({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toThrow(/OTEL_EXPORTER_OTLP_ENDPOINT/);
  });
});
