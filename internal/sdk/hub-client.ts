import { CloseCode, PROTOCOL, type ServerFrame } from '../protocol/index.js';
import type {
  CauseRef,
  ClientOptions,
  ClientState,
  DeliveryStream,
  DrainOptions,
  HubClient,
  HubEvent,
  PayloadOf,
  PublishOptions,
  SubscribeOptions,
  Subscription,
  TopicMap,
} from './client.js';
import { failSpan, formatTraceContext, startMessageSpan, traceFields } from '../tracecontext/index.js';
import { HubClientError } from './errors.js';
import { deliveryStream, handlerSubscription, type SettleDelivery, type Sub } from './subscriptions.js';
import { addAuthRequest, addRequest, dispatchFrame, OPEN, socketCtor, type Pending, type SocketLike } from './transport.js';

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_DRAIN_MS = 30_000;

/** A random UUID v4. Not `crypto.randomUUID`, which browsers offer only in secure contexts. */
function uuid(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x40;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The {@link HubClient} that `createClient` returns. */
export class Client<T extends TopicMap> implements HubClient<T> {
  readonly #o: ClientOptions;
  readonly #pending = new Map<string, Pending>();
  readonly #subs = new Map<string, Sub>();
  #ws: SocketLike | undefined;
  #state: ClientState = 'connecting';
  #authed = false;
  /** False once a drain reaches its second phase: publishes are refused from then on. */
  #publishing = true;
  #attempt = 0;
  #next = 0;
  #subNext = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  /** Request and subscription ids are per connection, so a random prefix is enough to tell clients apart in logs. */
  readonly #prefix = `c${uuid().slice(0, 8)}`;
  readonly #ready: Promise<void>;
  #markReady: () => void = () => undefined;
  #failReady: (err: HubClientError) => void = () => undefined;
  readonly #closed: Promise<HubClientError | undefined>;
  #markClosed: (err: HubClientError | undefined) => void = () => undefined;
  #drain: Promise<void> | undefined;
  readonly #onAbort = (): void => void this.close();

  constructor(options: ClientOptions) {
    this.#o = options;
    this.#ready = new Promise((resolve, reject) => {
      this.#markReady = resolve;
      this.#failReady = reject;
    });
    // Nobody has to ask for ready(): a close before connecting must not surface as an unhandled rejection.
    this.#ready.catch(() => undefined);
    this.#closed = new Promise((resolve) => (this.#markClosed = resolve));
    if (options.signal?.aborted) {
      this.#shut(undefined);
      return;
    }
    options.signal?.addEventListener('abort', this.#onAbort, { once: true });
    void this.#connect();
  }

  get state(): ClientState {
    return this.#state;
  }

  ready(): Promise<void> {
    return this.#ready;
  }

  closed(): Promise<HubClientError | undefined> {
    return this.#closed;
  }

  /**
   * Publishes in a `send` span, a child of the caller's active span (a handler's `process`
   * span inside `subscribe`), whose context the event carries on. Every retry is the same span.
   */
  async publish<K extends keyof T & string>(topic: K, payload: T[K], options: PublishOptions = {}): Promise<string> {
    const eventId = options.eventId ?? uuid();
    const span = startMessageSpan('send', { topic, id: eventId }, undefined);
    try {
      const id = await this.#publish(topic, payload, options, eventId, formatTraceContext(span.spanContext()));
      span.end();
      return id;
    } catch (err) {
      failSpan(span, err);
      throw err;
    }
  }

  async #publish(
    topic: string,
    payload: unknown,
    options: PublishOptions,
    eventId: string,
    trace: ReturnType<typeof formatTraceContext>,
  ): Promise<string> {
    if (!this.#publishing && this.#state !== 'closed') throw new HubClientError('DRAINING', 'client is draining', { eventId });
    const causes = options.causedBy === undefined ? undefined : Array.isArray(options.causedBy) ? options.causedBy : [options.causedBy];
    const frame = {
      op: 'PUBLISH',
      topic,
      payload,
      eventId,
      ...(options.key === undefined ? {} : { key: options.key }),
      ...(options.headers === undefined ? {} : { headers: options.headers }),
      ...(causes === undefined ? {} : { causedBy: causes.map((c: CauseRef) => (typeof c === 'string' ? c : c.id)) }),
      ...(options.tags === undefined ? {} : { tags: options.tags }),
      ...traceFields(trace),
    };
    const retryUntil = Date.now() + (this.#o.publishRetryMs ?? 30_000);
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#request(frame, true, options.signal);
        return eventId;
      } catch (err) {
        const e = err as HubClientError;
        // UNAVAILABLE may pass: retry with the same id (idempotent) while the budget lasts.
        const delay = Math.min(5_000, 250 * 2 ** Math.min(attempt, 5));
        if (e.code !== 'UNAVAILABLE' || Date.now() + delay > retryUntil || this.#state === 'closed' || options.signal?.aborted) {
          throw new HubClientError(e.code, e.message, { cause: e, eventId });
        }
        // Waits `delay`, or less if the client closes meanwhile (the next attempt then fails at once).
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([new Promise<void>((resolve) => (timer = setTimeout(resolve, delay))), this.#closed]);
        clearTimeout(timer);
      }
    }
  }

  async subscribe<P extends string>(
    topic: P,
    options: SubscribeOptions,
    handler: (payload: PayloadOf<T, P>, event: HubEvent<PayloadOf<T, P>>) => unknown,
  ): Promise<Subscription> {
    const id = `${this.#prefix}s${++this.#subNext}`;
    const settle: SettleDelivery = (op, sub, eventId, delayMs) => this.#settle(op, sub, eventId, delayMs);
    return this.#addSub(handlerSubscription(id, topic, options, handler, this.#o, settle));
  }

  stream<P extends string>(topic: P, options: SubscribeOptions = {}): DeliveryStream<PayloadOf<T, P>> {
    const id = `${this.#prefix}s${++this.#subNext}`;
    const settle: SettleDelivery = (op, sub, eventId, delayMs) => this.#settle(op, sub, eventId, delayMs);
    return deliveryStream(id, topic, options, settle, (sub) => this.#addSub(sub));
  }

  drain(options: DrainOptions = {}): Promise<void> {
    if (this.#drain) return this.#drain;
    if (this.#state === 'closed') return Promise.resolve();
    this.#drain = this.#runDrain(options.timeoutMs ?? DEFAULT_DRAIN_MS);
    return this.#drain;
  }

  close(): Promise<void> {
    this.#shut(undefined);
    return Promise.resolve();
  }

  async #runDrain(timeoutMs: number): Promise<void> {
    this.#setState('draining');
    const work = (async () => {
      await Promise.allSettled([...this.#subs.values()].map((s) => s.drain(() => this.#unsubscribe(s.id))));
      this.#publishing = false;
      await Promise.allSettled([...this.#pending.values()].filter((p) => p.frame['op'] === 'PUBLISH').map((p) => p.done));
    })();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finished = await Promise.race([
      work.then(() => true),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (finished) {
      this.#shut(undefined);
      return;
    }
    const publishes = [...this.#pending.values()].filter((p) => p.frame['op'] === 'PUBLISH').length;
    const err = new HubClientError('TIMEOUT', `drain did not finish within ${timeoutMs} ms (${publishes} publishes still in flight)`);
    this.#shut(err);
    throw err;
  }

  /** The one way to the final state: stops timers, fails what is pending, closes the socket. */
  #shut(reason: HubClientError | undefined): void {
    if (this.#state === 'closed') return;
    this.#setState('closed');
    this.#o.signal?.removeEventListener('abort', this.#onAbort);
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#refreshTimer);
    for (const p of [...this.#pending.values()]) p.settle(new HubClientError('CLOSED', 'client closed'));
    for (const sub of this.#subs.values()) sub.stop();
    this.#subs.clear();
    const ws = this.#ws;
    this.#ws = undefined;
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      ws.close(1000, 'client closed');
    }
    this.#failReady(new HubClientError('CLOSED', 'client closed before it connected'));
    this.#markClosed(reason);
  }

  async #addSub(sub: Sub): Promise<Subscription> {
    if (this.#state === 'draining') throw new HubClientError('DRAINING', 'client is draining');
    this.#subs.set(sub.id, sub);
    try {
      await this.#request(this.#subscribeFrame(sub), true);
    } catch (err) {
      this.#subs.delete(sub.id);
      throw err;
    }
    return {
      id: sub.id,
      unsubscribe: () => this.#unsubscribe(sub.id),
    };
  }

  /** Unsubscribes at the gateway, then forgets the subscription: events up to the reply are still dispatched. */
  async #unsubscribe(id: string): Promise<void> {
    if (!this.#subs.has(id) || this.#state === 'closed') return;
    try {
      await this.#request({ op: 'UNSUBSCRIBE', sub: id }, false);
    } catch (err) {
      // Without a connection (or after a reconnect that did not resubscribe) the gateway holds nothing to release.
      const code = (err as HubClientError).code;
      if (code !== 'NO_SUCH_SUBSCRIPTION' && code !== 'CONNECTION_LOST' && code !== 'CLOSED') throw err;
    } finally {
      this.#subs.delete(id);
    }
  }

  #subscribeFrame(sub: Sub): Record<string, unknown> {
    // Callbacks stay here; the gateway gets the options it understands.
    const { onTrimmed: _onTrimmed, ...wire } = sub.options;
    return { op: 'SUBSCRIBE', sub: sub.id, topic: sub.topic, ...wire };
  }

  async #settle(op: 'ACK' | 'NACK', sub: string, eventId: string, delayMs?: number): Promise<void> {
    await this.#request({ op, sub, eventId, ...(delayMs === undefined ? {} : { delayMs }) }, false).catch((err: HubClientError) => {
      // After a reconnect the gateway redelivers: there is nothing left to settle.
      if (err.code !== 'NO_SUCH_DELIVERY' && err.code !== 'NO_SUCH_SUBSCRIPTION' && err.code !== 'CONNECTION_LOST') throw err;
    });
  }

  #request(frame: Record<string, unknown>, replay: boolean, signal?: AbortSignal): Promise<ServerFrame> {
    if (this.#state === 'closed') return Promise.reject(new HubClientError('CLOSED', 'client closed'));
    if (signal?.aborted) return Promise.reject(new HubClientError('ABORTED', 'aborted', { cause: signal.reason }));
    const id = `${this.#prefix}r${++this.#next}`;
    const timeoutMs = this.#o.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    return addRequest(this.#pending, id, frame, replay, timeoutMs, signal, (p) => {
      if (this.#authed) this.#send(p);
    });
  }

  #send(p: Pending): void {
    if (this.#ws?.readyState !== OPEN) return;
    p.sent = true;
    this.#ws.send(JSON.stringify(p.frame));
  }

  #setState(state: ClientState): void {
    if (this.#state === state || this.#state === 'closed') return;
    // A draining client still reconnects underneath, but its state says what it is doing.
    if (this.#state === 'draining' && state !== 'closed') return;
    this.#state = state;
    this.#o.onStateChange?.(state);
  }

  async #connect(): Promise<void> {
    if (this.#state === 'closed') return;
    let ws: SocketLike;
    try {
      ws = new (await socketCtor(this.#o))(this.#o.url, [PROTOCOL]);
    } catch (err) {
      this.#o.onError?.(new HubClientError('CONNECTION_LOST', `cannot connect: ${String(err)}`, { cause: err }));
      this.#scheduleReconnect(false);
      return;
    }
    // Errors are followed by a close event, which is where we react.
    ws.onerror = () => undefined;
    if ((this.#state as ClientState) === 'closed') return ws.close(1000);
    this.#ws = ws;
    ws.onopen = () => void this.#authenticate(ws, true);
    ws.onmessage = (ev) => dispatchFrame(String(ev.data), this.#subs, this.#pending, this.#o);
    ws.onclose = (ev) => this.#onClose(ws, ev.code);
  }

  async #authenticate(ws: SocketLike, first: boolean): Promise<void> {
    let token: string;
    try {
      token = await this.#o.getToken();
    } catch (err) {
      this.#o.onError?.(new HubClientError('AUTH_FAILED', `getToken failed: ${String(err)}`, { cause: err }));
      if (first) ws.close(1000, 'no token');
      return;
    }
    if (ws !== this.#ws || ws.readyState !== OPEN) return;
    const id = `${this.#prefix}auth${++this.#next}`;
    const timeoutMs = this.#o.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    const reply = addAuthRequest(this.#pending, id, timeoutMs);
    ws.send(JSON.stringify({ op: 'AUTH', id, token }));
    let frame: ServerFrame;
    try {
      frame = await reply;
    } catch (err) {
      this.#o.onError?.(err as HubClientError);
      return;
    }
    if (frame.op !== 'OK') return; // refused: the gateway closes, and we reconnect with a fresh token
    this.#armRefresh(String(frame['expiresAt']));
    if (!first) return;
    this.#authed = true;
    this.#attempt = 0;
    // Resubscribe (not while draining: those subscriptions are on their way out), then send everything
    // queued (publishes keep their event ids).
    if (this.#state !== 'draining') {
      for (const sub of this.#subs.values()) {
        if ([...this.#pending.values()].some((p) => p.frame['op'] === 'SUBSCRIBE' && p.frame['sub'] === sub.id)) continue;
        void this.#request(this.#subscribeFrame(sub), false).catch((err: HubClientError) => this.#o.onError?.(err));
      }
    }
    for (const p of this.#pending.values()) if (!p.sent) this.#send(p);
    this.#setState('open');
    this.#markReady();
  }

  #armRefresh(expiresAt: string): void {
    clearTimeout(this.#refreshTimer);
    const at = Date.parse(expiresAt);
    if (!Number.isFinite(at)) return;
    const delay = Math.max(1_000, at - Date.now() - (this.#o.refreshBeforeMs ?? 30_000));
    this.#refreshTimer = setTimeout(
      () => {
        const ws = this.#ws;
        if (ws && this.#authed) void this.#authenticate(ws, false);
      },
      Math.min(delay, 2 ** 31 - 1),
    );
  }

  #onClose(ws: SocketLike, code: number): void {
    if (ws !== this.#ws) return;
    this.#ws = undefined;
    this.#authed = false;
    clearTimeout(this.#refreshTimer);
    if (this.#state === 'closed') return;
    // Requests that cannot be replayed fail now; idempotent ones wait for the next connection.
    for (const p of [...this.#pending.values()]) {
      if (p.replay) p.sent = false;
      else p.settle(new HubClientError('CONNECTION_LOST', `connection closed (${code}) before a reply`));
    }
    this.#scheduleReconnect(code === CloseCode.SHUTTING_DOWN);
  }

  #scheduleReconnect(soon: boolean): void {
    this.#setState('reconnecting');
    const r = this.#o.reconnect ?? {};
    const base = Math.min(r.maxDelayMs ?? 10_000, (r.initialDelayMs ?? 250) * 2 ** this.#attempt++);
    // Full jitter spreads a fleet of clients after a gateway restart.
    const delay = soon && this.#attempt === 1 ? Math.random() * 100 : Math.random() * base;
    this.#reconnectTimer = setTimeout(() => void this.#connect(), delay);
  }
}
