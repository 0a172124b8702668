/**
 * The consumer of test/tracing.process.test.ts, a process of its own exporting its spans
 * over OTLP (OTEL_* variables): an SDK group member of `mailer` on `orders.created` that
 * fails an order marked `failOnce` the first time (a NACK, so it comes back), sends an
 * email in a span of its own and publishes `emails.sent` caused by the order; once it has
 * handled EXPECT orders it replays `orders.created` from the earliest event on a live
 * subscription. One JSON line per step on stdout.
 */
import { trace } from '@opentelemetry/api';
import { envReader } from '../../internal/config/index.js';
import { createLogger } from '../../internal/log/index.js';
import { createClient, type HubEvent } from '../../internal/sdk/index.js';
import { readTracingSettings, startTracing } from '../../internal/tracing/index.js';

interface Order {
  orderId: string;
  failOnce?: boolean;
}

const env = process.env;
const say = (line: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify(line)}\n`);
const r = envReader(env);
const settings = readTracingSettings(r, env);
r.done();
const tracing = await startTracing(settings, { binary: 'test-consumer' }, createLogger({ level: 'warn', fields: {} }));
const hub = createClient<{ 'orders.created': Order; 'emails.sent': { orderId: string } }>({
  url: env['HUB_URL'] as string,
  getToken: () => env['HUB_TOKEN'] as string,
});
const expect = Number(env['EXPECT'] ?? '1');
const failed = new Set<string>();
const handled = new Set<string>();
const tracer = trace.getTracer('shop-mailer');

const ids = (e: HubEvent<unknown>): Record<string, unknown> => ({
  id: e.id,
  traceparent: e.traceparent ?? null,
  causedBy: e.causedBy ?? null,
  tags: e.tags ?? null,
});

await hub.subscribe('orders.created', { group: 'mailer', from: 'earliest' }, async (order, event) => {
  say({ msg: 'delivery', active: trace.getActiveSpan()?.spanContext().spanId ?? null, ...ids(event) });
  if (order.failOnce && !failed.has(event.id)) {
    failed.add(event.id);
    throw new Error(`smtp unavailable for ${order.orderId}`);
  }
  await tracer.startActiveSpan('send email', async (span) => {
    span.setAttribute('order.id', order.orderId);
    await new Promise((r) => setTimeout(r, 5));
    span.end();
  });
  // One call marks the order as the cause; the publish joins the handler's trace.
  const emailId = await hub.publish(
    'emails.sent',
    { orderId: order.orderId },
    { key: order.orderId, causedBy: event, eventId: `email-${event.id}` },
  );
  handled.add(event.id);
  say({ msg: 'handled', id: event.id, emailId });
  if (handled.size === expect) {
    await hub.subscribe('orders.created', { from: 'earliest' }, (_payload, replayed) => {
      say({ msg: 'replayed', active: trace.getActiveSpan()?.spanContext().spanId ?? null, ...ids(replayed) });
    });
    say({ msg: 'replaying' });
  }
});
say({ msg: 'subscribed' });

process.once('SIGTERM', () => {
  void (async () => {
    await hub.close();
    await tracing.shutdown();
    say({ msg: 'stopped' });
    process.exit(0);
  })();
});
