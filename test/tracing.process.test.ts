/**
 * One event, one story (issue 20), read back from a real tracing backend: an application
 * span writes an order and its outbox message (this process), a drainer and a gateway run
 * as processes, and a consumer process handles the order through the SDK, publishing an
 * email caused by it. All four export OTLP to a Jaeger v2 run here (in-memory storage,
 * loopback ports); the traces are read back through Jaeger's own query API: one trace id
 * from the application's span to the consumer's own spans, each span the child of the
 * one before, and a redelivery after a NACK and a replay starting new traces linked to
 * the original.
 */
import { trace as otelTrace, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { context } from '@opentelemetry/api';
import { resolve } from 'node:path';
import { createOutbox, detectCapabilities, migrateOutbox } from '../internal/outbox/index.js';
import { useTestDb } from './harness/db.js';
import { TEST_SECRET, rootToken } from './harness/hub.js';
import { describeTracing, startJaeger, type Jaeger, type StoredSpan } from './harness/jaeger.js';
import { eventually, startBinary, startScript, type BinaryProcess, type LogLine } from './harness/process.js';
import { freePort } from './harness/server.js';

const PRODUCER = 4;
const SERVER = 2;
const CONSUMER = 5;
const ERROR = 2;

describeTracing('trace context from the writer to the consumer, in Jaeger', () => {
  const t = useTestDb('tracing');
  let jaeger: Jaeger;
  let provider: TracerProvider;
  let tracer: Tracer;
  const procs: BinaryProcess[] = [];

  beforeAll(async () => {
    jaeger = await startJaeger();
    // The application: this process, with its own provider (service `shop-app`).
    provider = new TracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'shop-app' }),
      spanProcessors: [new SimpleSpanProcessor({ exporter: new OTLPTraceExporter({ url: `${jaeger.otlpEndpoint}/v1/traces` }) })],
    });
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    otelTrace.setGlobalTracerProvider(provider);
    tracer = otelTrace.getTracer('shop-app');
  });

  afterAll(async () => {
    for (const p of procs) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => p.exited));
    await provider?.shutdown();
    otelTrace.disable();
    context.disable();
    await jaeger?.stop();
  });

  it('follows an order from the application span to the consumer, and redeliveries and replays into linked traces', async () => {
    const db = t.db;
    await migrateOutbox(db, { partitions: 4 });
    const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpEndpoint, OTEL_SERVICE_NAME: '' };
    const common = {
      MONGO_URL: t.url,
      MONGO_DB: t.name,
      OUTBOX_PARTITIONS: '4',
      METRICS_HOST: '127.0.0.1',
      METRICS_PORT: '0',
      POLL_MAX: '30ms',
      TAIL_POLL_MAX: '30ms',
      ...otel,
    };
    const drainer = startBinary('drainer', common);
    procs.push(drainer);
    const port = await freePort();
    const gateway = startBinary('gateway', {
      ...common,
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_PORT: String(port),
      JWT_SECRET: TEST_SECRET,
      REDELIVERY_BASE: '100ms',
    });
    procs.push(gateway);
    await drainer.waitForLog((l) => l.msg === 'exporting spans over OTLP');
    await gateway.waitForLog((l) => l.msg === 'gateway listening');
    const consumer = startScript(resolve('dist/test/harness/tracing-consumer.js'), {
      HUB_URL: `ws://127.0.0.1:${port}/ws`,
      HUB_TOKEN: await rootToken(600),
      OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpEndpoint,
      OTEL_SERVICE_NAME: 'shop-mailer',
      EXPECT: '2',
    });
    procs.push(consumer);
    await consumer.waitForLog((l) => l.msg === 'subscribed');

    // The application: an order and its outbox message, in one transaction where the server has them.
    const { transactions } = await detectCapabilities(t.client, db);
    const outbox = createOutbox(db, { partitions: 4 });
    const placeOrder = (orderId: string, failOnce: boolean): Promise<{ traceId: string; spanId: string; eventId: string }> =>
      tracer.startActiveSpan('POST /orders', async (span) => {
        const order = { _id: orderId, item: 'tea' };
        let eventId = '';
        const write = async (session?: import('mongodb').ClientSession): Promise<void> => {
          await db.collection<{ _id: string; item: string }>('orders').insertOne(order, session ? { session } : {});
          const receipt = await outbox.add(
            { topic: 'orders.created', key: orderId, payload: { orderId, failOnce }, tags: ['shop', 'eu'] },
            session ? { session } : {},
          );
          eventId = receipt.id;
        };
        if (transactions) {
          const session = t.client.startSession();
          try {
            await session.withTransaction(() => write(session));
          } finally {
            await session.endSession();
          }
        } else await write();
        span.end();
        return { ...span.spanContext(), eventId };
      });
    const a = await placeOrder('o-a', false);
    const b = await placeOrder('o-b', true);

    const lines = (msg: string, id?: string): LogLine[] =>
      consumer.logs.filter((l) => l.msg === msg && (id === undefined || l['id'] === id));
    await eventually(() => lines('replayed').length >= 2, 60_000, 'both orders handled, then replayed');
    const traceOf = (l: LogLine | undefined): string => String(l?.['traceparent']).split('-')[1] ?? '';
    const spanOf = (l: LogLine | undefined): string => String(l?.['traceparent']).split('-')[2] ?? '';

    // Every span of a trace, once every process's exporter (batches every 5 s, each on its own
    // clock) has sent the ones named: waiting for one process's spans says nothing of another's.
    const spans = (traceId: string, want: ReadonlyArray<readonly [service: string, name: string]>, what: string): Promise<StoredSpan[]> =>
      eventually(
        async () => {
          const got = await jaeger.trace(traceId);
          return want.every(([service, name]) => got.some((x) => x.service === service && x.name === name)) ? got : undefined;
        },
        30_000,
        what,
      );
    const one = (all: StoredSpan[], name: string, service: string, where: (s: StoredSpan) => boolean = () => true): StoredSpan => {
      const found = all.filter((s) => s.name === name && s.service === service && where(s));
      if (found.length !== 1) {
        throw new Error(
          `expected one ${name} span of ${service}, found ${found.length}: ${JSON.stringify(all.map((s) => [s.service, s.name, s.spanId, s.parentSpanId]))}`,
        );
      }
      return found[0] as StoredSpan;
    };

    // Order A: one trace from the application's span to the email's append, across the four processes.
    const traceA = await spans(
      a.traceId,
      [
        ['shop-app', 'POST /orders'],
        ['shop-app', 'create orders.created'],
        ['outbox-hub-drainer', 'append orders.created'],
        ['outbox-hub-gateway', 'deliver orders.created'],
        ['shop-mailer', 'process orders.created'],
        ['shop-mailer', 'send email'],
        ['shop-mailer', 'send emails.sent'],
        ['outbox-hub-gateway', 'publish emails.sent'],
        ['outbox-hub-gateway', 'create emails.sent'],
        ['outbox-hub-drainer', 'append emails.sent'],
      ],
      `trace ${a.traceId} complete in Jaeger`,
    );
    const root = one(traceA, 'POST /orders', 'shop-app');
    expect(root.spanId).toBe(a.spanId);
    expect(root.parentSpanId).toBe('');
    const create = one(traceA, 'create orders.created', 'shop-app');
    expect([create.parentSpanId, create.kind]).toEqual([root.spanId, PRODUCER]);
    expect(create.attributes).toMatchObject({
      'messaging.system': 'outbox_hub',
      'messaging.operation.type': 'create',
      'messaging.destination.name': 'orders.created',
      'messaging.message.id': a.eventId,
    });
    const append = one(traceA, 'append orders.created', 'outbox-hub-drainer');
    expect([append.parentSpanId, append.kind]).toEqual([create.spanId, PRODUCER]);
    expect(append.attributes['outbox_hub.seq']).toEqual(expect.any(Number));
    const deliver = one(traceA, 'deliver orders.created', 'outbox-hub-gateway');
    expect([deliver.parentSpanId, deliver.kind]).toEqual([append.spanId, PRODUCER]);
    expect(deliver.attributes).toMatchObject({ 'messaging.consumer.group.name': 'mailer', 'outbox_hub.delivery': 1 });
    const processA = one(traceA, 'process orders.created', 'shop-mailer');
    expect([processA.parentSpanId, processA.kind]).toEqual([deliver.spanId, CONSUMER]);
    // The consumer's own span and its publish join the trace, the publish through the gateway to the drainer.
    expect(one(traceA, 'send email', 'shop-mailer').parentSpanId).toBe(processA.spanId);
    const send = one(traceA, 'send emails.sent', 'shop-mailer');
    expect([send.parentSpanId, send.kind]).toEqual([processA.spanId, PRODUCER]);
    const publish = one(traceA, 'publish emails.sent', 'outbox-hub-gateway');
    expect([publish.parentSpanId, publish.kind]).toEqual([send.spanId, SERVER]);
    const createEmail = one(traceA, 'create emails.sent', 'outbox-hub-gateway');
    expect(createEmail.parentSpanId).toBe(publish.spanId);
    expect(one(traceA, 'append emails.sent', 'outbox-hub-drainer').parentSpanId).toBe(createEmail.spanId);
    expect(new Set(traceA.map((s) => s.traceId))).toEqual(new Set([a.traceId]));
    expect(new Set(traceA.map((s) => s.service))).toEqual(new Set(['shop-app', 'outbox-hub-drainer', 'outbox-hub-gateway', 'shop-mailer']));
    // The event as the handler saw it: the delivery's context (its handler's span active inside it), its tags.
    const deliveredA = lines('delivery', a.eventId)[0];
    expect([traceOf(deliveredA), spanOf(deliveredA)]).toEqual([a.traceId, deliver.spanId]);
    expect(deliveredA?.['active']).toBe(processA.spanId);
    expect(deliveredA?.['tags']).toEqual(['shop', 'eu']);

    // Order B: its first delivery failed in its own trace...
    const traceB = await spans(
      b.traceId,
      [
        ['outbox-hub-drainer', 'append orders.created'],
        ['outbox-hub-gateway', 'deliver orders.created'],
        ['shop-mailer', 'process orders.created'],
      ],
      `trace ${b.traceId} in Jaeger`,
    );
    const appendB = one(traceB, 'append orders.created', 'outbox-hub-drainer');
    const processB = one(traceB, 'process orders.created', 'shop-mailer');
    expect(processB.status.code).toBe(ERROR);
    expect(one(traceB, 'deliver orders.created', 'outbox-hub-gateway').attributes['outbox_hub.delivery']).toBe(1);
    // ...and its redelivery after the NACK starts a new trace, linked to the original.
    const [, second] = lines('delivery', b.eventId);
    const redeliveryTrace = traceOf(second);
    expect(redeliveryTrace).not.toBe(b.traceId);
    const traceB2 = await spans(
      redeliveryTrace,
      [
        ['outbox-hub-gateway', 'deliver orders.created'],
        ['shop-mailer', 'process orders.created'],
        ['outbox-hub-drainer', 'append emails.sent'],
      ],
      'the redelivery trace',
    );
    const redeliver = one(traceB2, 'deliver orders.created', 'outbox-hub-gateway');
    expect(redeliver.parentSpanId).toBe('');
    expect(redeliver.attributes['outbox_hub.delivery']).toBe(2);
    expect(redeliver.links).toEqual([{ traceId: b.traceId, spanId: appendB.spanId }]);
    expect(one(traceB2, 'process orders.created', 'shop-mailer').parentSpanId).toBe(redeliver.spanId);

    // The replay from the earliest event: a new trace per event, linked to the event's own.
    const replayedA = lines('replayed', a.eventId)[0];
    const replayTrace = traceOf(replayedA);
    expect(replayTrace).not.toBe(a.traceId);
    const traceR = await spans(
      replayTrace,
      [
        ['outbox-hub-gateway', 'deliver orders.created'],
        ['shop-mailer', 'process orders.created'],
      ],
      'the replay trace',
    );
    const replayDeliver = one(traceR, 'deliver orders.created', 'outbox-hub-gateway');
    expect(replayDeliver.parentSpanId).toBe('');
    expect(replayDeliver.attributes['outbox_hub.replay']).toBe(true);
    expect(replayDeliver.links).toEqual([{ traceId: a.traceId, spanId: append.spanId }]);
    expect(one(traceR, 'process orders.created', 'shop-mailer').parentSpanId).toBe(replayDeliver.spanId);

    // Causation: each email names its order, and the log finds an order's consequences by index.
    const emails = await db.collection<{ _id: string; topic: string }>('events').find({ causedBy: a.eventId }).toArray();
    expect(emails.map((e) => [e.topic, e._id])).toEqual([['emails.sent', `email-${a.eventId}`]]);
  }, 120_000);
});
