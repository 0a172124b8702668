import type { WireEvent } from '../protocol/index.js';
import type { ClientOptions, Delivery, DeliveryStream, HubEvent, SubscribeOptions, Subscription } from './client.js';
import { ROOT_CONTEXT, context, contextFrom, failSpan, startMessageSpan, trace, type Context } from '../tracecontext/index.js';
import { HubClientError } from './errors.js';

/** A subscription as the client keeps it across reconnects, until it is unsubscribed, drained or stopped. */
export interface Sub {
  id: string;
  topic: string;
  options: SubscribeOptions;
  onEvent: (event: WireEvent, delivery: number) => void;
  /** Finishes the deliveries in hand in the order the subscription kind needs, calling `leave` on the way. */
  drain(leave: () => Promise<void>): Promise<void>;
  /** The client closed: end whatever waits for deliveries. */
  stop(): void;
}

/** Acks or nacks a group delivery at the gateway (the client's `ACK`/`NACK` request). */
export type SettleDelivery = (op: 'ACK' | 'NACK', sub: string, eventId: string, delayMs?: number) => Promise<void>;

/**
 * The OpenTelemetry context of an event's trace, to continue it by hand, e.g. around the
 * body of a `stream` loop: `context.with(eventContext(d.event), () => ...)`. (Handlers of
 * `subscribe` already run in a `process` span of it.) ROOT when the event carries none.
 */
export function eventContext(event: { readonly traceparent?: string; readonly tracestate?: string }): Context {
  return contextFrom(event);
}

function toEvent<P>(e: WireEvent): HubEvent<P> {
  return { ...e, payload: e.payload as P, createdAt: new Date(e.createdAt), publishedAt: new Date(e.publishedAt) };
}

/** Resolves once every promise in `work` (which may grow while we wait) has settled. */
async function settledAll(work: Set<Promise<unknown>>): Promise<void> {
  while (work.size > 0) await Promise.allSettled([...work]);
}

/**
 * The subscription behind `HubClient.subscribe`: runs `handler` on each
 * delivery (live: one at a time, in order; group: acked or nacked when it ends).
 */
export function handlerSubscription<E>(
  id: string,
  topic: string,
  options: SubscribeOptions,
  handler: (payload: E, event: HubEvent<E>) => unknown,
  clientOptions: ClientOptions,
  settleDelivery: SettleDelivery,
): Sub {
  const group = options.group !== undefined;
  let chain: Promise<unknown> = Promise.resolve();
  const running = new Set<Promise<unknown>>();
  let draining = false;
  const run = async (wire: WireEvent, delivery: number): Promise<void> => {
    const event = toEvent<E>(wire);
    // The handler runs in a `process` span, a child of the delivery's trace context, so the
    // spans it makes (and what it publishes) join the event's trace.
    const span = startMessageSpan(
      'process',
      {
        topic: wire.topic,
        id: wire.id,
        partition: wire.partition,
        seq: wire.seq,
        ...(options.group === undefined ? {} : { group: options.group, delivery }),
      },
      wire,
      { parent: ROOT_CONTEXT },
    );
    try {
      await context.with(trace.setSpan(ROOT_CONTEXT, span), () => handler(event.payload, event));
      span.end();
      if (group) await settleDelivery('ACK', id, wire.id);
    } catch (err) {
      if (span.isRecording()) failSpan(span, err);
      if (err instanceof HubClientError && (err.code === 'CONNECTION_LOST' || err.code === 'CLOSED')) return;
      clientOptions.onError?.(new HubClientError('INTERNAL', `handler for ${topic} failed: ${String(err)}`, { cause: err }));
      // Best effort: an unsettled delivery is redelivered after the ack timeout anyway.
      if (group) await settleDelivery('NACK', id, wire.id).catch(() => undefined);
    }
  };
  const onEvent = (wire: WireEvent, delivery: number): void => {
    if (!group) {
      chain = chain.then(() => run(wire, delivery));
      return;
    }
    // While draining, deliveries that have not started are left to the gateway, which gives them to another member.
    if (draining) return;
    const p = run(wire, delivery);
    running.add(p);
    void p.finally(() => running.delete(p));
  };
  const drain = async (leave: () => Promise<void>): Promise<void> => {
    if (group) {
      draining = true;
      await settledAll(running);
      await leave();
      return;
    }
    // Live: events keep arriving until the gateway confirms the unsubscribe; handle all of them,
    // whatever became of the unsubscribe.
    try {
      await leave();
    } finally {
      let last: Promise<unknown>;
      do {
        last = chain;
        await last;
      } while (last !== chain);
    }
  };
  return { id, topic, options, onEvent, drain, stop: () => undefined };
}

/**
 * The subscription behind `HubClient.stream`: queues deliveries for the
 * iterator; the subscription is made (through `addSub`) when the loop first asks.
 */
export function deliveryStream<E>(
  id: string,
  topic: string,
  options: SubscribeOptions,
  settleDelivery: SettleDelivery,
  addSub: (sub: Sub) => Promise<Subscription>,
): DeliveryStream<E> {
  type D = Delivery<E> & { settled: boolean };
  const group = options.group !== undefined;
  const queue: D[] = [];
  const waiters: Array<(r: IteratorResult<D>) => void> = [];
  /** The delivery the loop body holds, until it asks for the next one. */
  let current: D | undefined;
  /** No delivery is handed out once the queue is empty. */
  let ended = false;
  let idleWaiters: Array<() => void> = [];
  let sub: Promise<Subscription> | undefined;
  const checkIdle = (): void => {
    if (current !== undefined || queue.length > 0) return;
    for (const w of idleWaiters) w();
    idleWaiters = [];
  };
  const idle = (): Promise<void> =>
    new Promise((resolve) => {
      idleWaiters.push(resolve);
      checkIdle();
    });
  const end = (): void => {
    ended = true;
    if (queue.length === 0) for (const w of waiters.splice(0)) w({ value: undefined, done: true });
  };
  const settle = async (op: 'ACK' | 'NACK', d: D, delayMs?: number): Promise<void> => {
    if (d.settled) return;
    d.settled = true;
    if (group) await settleDelivery(op, id, d.event.id, delayMs);
  };
  const onEvent = (wire: WireEvent, delivery: number): void => {
    if (ended) return;
    const d: D = {
      event: toEvent(wire),
      delivery,
      settled: false,
      ack: () => settle('ACK', d),
      nack: (delayMs?: number) => settle('NACK', d, delayMs),
    };
    const w = waiters.shift();
    if (w) {
      current = d;
      w({ value: d, done: false });
    } else queue.push(d);
  };
  const drain = async (leave: () => Promise<void>): Promise<void> => {
    if (group) {
      // Queued deliveries were never handed out: the gateway gives them to another member once we unsubscribe.
      queue.length = 0;
      end();
      await idle();
      await leave();
      return;
    }
    try {
      await leave();
    } finally {
      end();
      await idle();
    }
  };
  const stop = (): void => {
    queue.length = 0;
    end();
  };
  const start = (): Promise<Subscription> => (sub ??= addSub({ id, topic, options, onEvent, drain, stop }));
  const unsubscribe = async (): Promise<void> => {
    queue.length = 0;
    current = undefined;
    end();
    checkIdle();
    if (sub) await (await sub).unsubscribe();
  };
  const iterator: DeliveryStream<E> = {
    [Symbol.asyncIterator]() {
      return iterator;
    },
    next: async (): Promise<IteratorResult<D>> => {
      // Best effort: an ack that cannot be sent now is redelivered, which idempotent consumers absorb.
      if (current) await current.ack().catch(() => undefined);
      current = undefined;
      checkIdle();
      await start();
      const queued = queue.shift();
      if (queued) {
        current = queued;
        return { value: queued, done: false };
      }
      if (ended) return { value: undefined, done: true };
      return new Promise<IteratorResult<D>>((r) => waiters.push(r));
    },
    return: async (): Promise<IteratorResult<D>> => {
      await unsubscribe();
      return { value: undefined, done: true };
    },
    throw: async (err?: unknown): Promise<IteratorResult<D>> => {
      // Best effort: a nack that cannot be sent leaves the delivery to the ack timeout.
      if (current) await current.nack().catch(() => undefined);
      await unsubscribe();
      throw err;
    },
    unsubscribe,
  };
  return iterator;
}
