import { CloseCode, PROTOCOL, type ServerFrame, type StartFrom, type WireEvent } from '../protocol/index.js';
import { HubClientError } from './errors.js';

/** Topic name to payload type; declare it as an interface or type literal. */
export type TopicMap = object;

/** The declared topics a pattern can match (`*` one segment, `**` any). */
type Matching<K extends string, P extends string> = P extends '**'
  ? K
  : P extends `${infer Pre}.**`
    ? K extends Pre | `${Pre}.${string}`
      ? K
      : never
    : P extends `${infer Pre}.*`
      ? K extends `${Pre}.${infer Rest}`
        ? Rest extends `${string}.${string}`
          ? never
          : K
        : never
      : K extends P
        ? K
        : never;

/** Payload type for a topic or pattern: the declared topics it matches, or all of them when that cannot be told. */
export type PayloadOf<T extends TopicMap, P extends string> = [Matching<keyof T & string, P>] extends [never]
  ? T[keyof T]
  : T[Matching<keyof T & string, P>];

/**
 * Connection state: connecting -> open <-> reconnecting, then draining (after
 * `drain()`) and closed. `closed` is final.
 */
export type ClientState = 'connecting' | 'open' | 'reconnecting' | 'draining' | 'closed';

/** The minimal WebSocket surface the client uses (browser WebSocket and `ws` both fit). */
interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}
type SocketCtor = new (url: string, protocols: string[]) => SocketLike;

/** Options for {@link createClient}. */
export interface ClientOptions {
  /** Gateway URL, e.g. `wss://hub.example.com/ws`. */
  url: string;
  /** Returns a current JWT; called on every (re)connect and before expiry. */
  getToken: () => string | Promise<string>;
  /** WebSocket implementation; defaults to the platform's, else the `ws` package. */
  WebSocket?: unknown;
  /** Reconnect backoff: jittered, doubling from `initialDelayMs` to `maxDelayMs`. */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
  /** Bound on each request (publish, subscribe...). Default 10 s. */
  requestTimeoutMs?: number;
  /** Re-authenticate this long before the token expires. Default 30 s. */
  refreshBeforeMs?: number;
  /**
   * How long a publish keeps retrying (with the same event id, so it is stored
   * once) while the gateway answers `UNAVAILABLE` (its database is unreachable
   * or slow). Default 30 s; 0 does not retry.
   */
  publishRetryMs?: number;
  /** Aborting it closes the client, as `close()` does. */
  signal?: AbortSignal;
  onStateChange?: (state: ClientState) => void;
  /** Errors not tied to a call (auth refused on reconnect, handler failures). */
  onError?: (err: HubClientError) => void;
}

/** Options for one publish. */
export interface PublishOptions {
  key?: string;
  headers?: Record<string, string>;
  /** Idempotency key; generated when absent and reused on every retry. */
  eventId?: string;
  signal?: AbortSignal;
}

/** Options for one subscription. */
export interface SubscribeOptions {
  /** Consumer group: at-least-once, shared among members. Without it: live tail. */
  group?: string;
  /**
   * Where to start: a live subscription replays from here; a group that does not
   * exist yet starts here (default `now`), an existing group resumes from its cursor.
   */
  from?: StartFrom;
  /** Group only: most unacked deliveries at once. */
  maxInFlight?: number;
}

/** Options for {@link HubClient.drain}. */
export interface DrainOptions {
  /** Bound on the whole drain; past it the client closes and `drain()` rejects with `TIMEOUT`. Default 30 s. */
  timeoutMs?: number;
}

/** An event as handlers see it. */
export interface HubEvent<P> {
  id: string;
  topic: string;
  key: string | null;
  partition: number;
  seq: number;
  payload: P;
  headers: Record<string, string>;
  createdAt: Date;
  publishedAt: Date;
}

/** One delivery from {@link HubClient.stream}. */
export interface Delivery<P> {
  event: HubEvent<P>;
  /** 1 for the first delivery, higher for redeliveries. */
  delivery: number;
  ack(): Promise<void>;
  nack(delayMs?: number): Promise<void>;
}

/** A live subscription handle. */
export interface Subscription {
  readonly id: string;
  unsubscribe(): Promise<void>;
}

/** What {@link HubClient.stream} returns: an async iterator of deliveries that can also unsubscribe. */
export interface DeliveryStream<P> extends AsyncIterable<Delivery<P>> {
  [Symbol.asyncIterator](): DeliveryStream<P>;
  next(): Promise<IteratorResult<Delivery<P>, undefined>>;
  return(): Promise<IteratorResult<Delivery<P>, undefined>>;
  throw(err?: unknown): Promise<IteratorResult<Delivery<P>, undefined>>;
  unsubscribe(): Promise<void>;
}

/**
 * A connection to the gateway that reconnects, resubscribes and refreshes its
 * token by itself. Create with {@link createClient}.
 */
export interface HubClient<T extends TopicMap = Record<string, unknown>> {
  readonly state: ClientState;

  /**
   * Resolves once connected and authenticated (the first time). Rejects with
   * `CLOSED` when the client is closed (or its signal aborted) before that.
   */
  ready(): Promise<void>;

  /** Publishes durably; resolves with the event id. Retried with the same id across reconnects. */
  publish<K extends keyof T & string>(topic: K, payload: T[K], options?: PublishOptions): Promise<string>;

  /**
   * Subscribes `handler` to `topic` (a pattern). With a group, the delivery is
   * acked when the handler resolves and nacked when it throws. Live handlers
   * run one at a time, in order.
   */
  subscribe<P extends string>(
    topic: P,
    options: SubscribeOptions,
    handler: (payload: PayloadOf<T, P>, event: HubEvent<PayloadOf<T, P>>) => unknown,
  ): Promise<Subscription>;

  /**
   * Async-iterator form. Each delivery is acked when the loop asks for the
   * next one, unless acked or nacked already. Leaving the loop (`break`,
   * `return` or an exception) unsubscribes without acking the delivery in
   * hand: a group redelivers it (ack it first to keep it from coming back).
   */
  stream<P extends string>(topic: P, options?: SubscribeOptions): DeliveryStream<PayloadOf<T, P>>;

  /**
   * Stops taking new work, finishes what is in flight, then closes:
   * subscribing is refused at once (`DRAINING`); live subscriptions are
   * unsubscribed and the events already received are handled; group
   * subscriptions take no new delivery (the gateway gives those to other
   * members), finish the running handlers and their acks, then unsubscribe.
   * Then publishing is refused and the publishes in flight are awaited. Past
   * `timeoutMs` the client closes anyway and the promise rejects with `TIMEOUT`.
   * Calling it again returns the same promise.
   */
  drain(options?: DrainOptions): Promise<void>;

  /** Closes the connection at once and rejects whatever is pending with `CLOSED`. Idempotent. */
  close(): Promise<void>;

  /**
   * Resolves when the client is closed, for good: with `undefined` after
   * `close()`, an abort or a drain that finished, or with the error that ended
   * it (a drain past its bound).
   */
  closed(): Promise<HubClientError | undefined>;
}

interface Pending {
  frame: Record<string, unknown>;
  /** Sent again after a reconnect (idempotent requests only). */
  replay: boolean;
  sent: boolean;
  /** Settles the request once: clears its timer and abort listener, then resolves or rejects. */
  settle(outcome: ServerFrame | HubClientError): void;
  /** Settles (never rejects) when the request does. */
  done: Promise<void>;
}

interface Sub {
  id: string;
  topic: string;
  options: SubscribeOptions;
  onEvent: (event: WireEvent, delivery: number) => void;
  /** Finishes the deliveries in hand in the order the subscription kind needs, calling `leave` on the way. */
  drain(leave: () => Promise<void>): Promise<void>;
  /** The client closed: end whatever waits for deliveries. */
  stop(): void;
}

const OPEN = 1;
const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_DRAIN_MS = 30_000;

function toEvent<P>(e: WireEvent): HubEvent<P> {
  return { ...e, payload: e.payload as P, createdAt: new Date(e.createdAt), publishedAt: new Date(e.publishedAt) };
}

/** A random UUID v4. Not `crypto.randomUUID`, which browsers offer only in secure contexts. */
function uuid(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x40;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Resolves once every promise in `work` (which may grow while we wait) has settled. */
async function settledAll(work: Set<Promise<unknown>>): Promise<void> {
  while (work.size > 0) await Promise.allSettled([...work]);
}

class Client<T extends TopicMap> implements HubClient<T> {
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

  async publish<K extends keyof T & string>(topic: K, payload: T[K], options: PublishOptions = {}): Promise<string> {
    const eventId = options.eventId ?? uuid();
    if (!this.#publishing && this.#state !== 'closed') throw new HubClientError('DRAINING', 'client is draining', { eventId });
    const frame = {
      op: 'PUBLISH',
      topic,
      payload,
      eventId,
      ...(options.key === undefined ? {} : { key: options.key }),
      ...(options.headers === undefined ? {} : { headers: options.headers }),
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
    const group = options.group !== undefined;
    let chain: Promise<unknown> = Promise.resolve();
    const running = new Set<Promise<unknown>>();
    let draining = false;
    const run = async (wire: WireEvent): Promise<void> => {
      const event = toEvent<PayloadOf<T, P>>(wire);
      try {
        await handler(event.payload, event);
        if (group) await this.#settle('ACK', id, wire.id);
      } catch (err) {
        if (err instanceof HubClientError && (err.code === 'CONNECTION_LOST' || err.code === 'CLOSED')) return;
        this.#o.onError?.(new HubClientError('INTERNAL', `handler for ${topic} failed: ${String(err)}`, { cause: err }));
        // Best effort: an unsettled delivery is redelivered after the ack timeout anyway.
        if (group) await this.#settle('NACK', id, wire.id).catch(() => undefined);
      }
    };
    const onEvent = (wire: WireEvent): void => {
      if (!group) {
        chain = chain.then(() => run(wire));
        return;
      }
      // While draining, deliveries that have not started are left to the gateway, which gives them to another member.
      if (draining) return;
      const p = run(wire);
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
    return this.#addSub({ id, topic, options, onEvent, drain, stop: () => undefined });
  }

  stream<P extends string>(topic: P, options: SubscribeOptions = {}): DeliveryStream<PayloadOf<T, P>> {
    type D = Delivery<PayloadOf<T, P>> & { settled: boolean };
    const group = options.group !== undefined;
    const queue: D[] = [];
    const waiters: Array<(r: IteratorResult<D>) => void> = [];
    /** The delivery the loop body holds, until it asks for the next one. */
    let current: D | undefined;
    /** No delivery is handed out once the queue is empty. */
    let ended = false;
    let idleWaiters: Array<() => void> = [];
    let sub: Promise<Subscription> | undefined;
    const id = `${this.#prefix}s${++this.#subNext}`;
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
      if (group) await this.#settle(op, id, d.event.id, delayMs);
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
    const start = (): Promise<Subscription> => (sub ??= this.#addSub({ id, topic, options, onEvent, drain, stop }));
    const unsubscribe = async (): Promise<void> => {
      queue.length = 0;
      current = undefined;
      end();
      checkIdle();
      if (sub) await (await sub).unsubscribe();
    };
    const iterator: DeliveryStream<PayloadOf<T, P>> = {
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
    return { op: 'SUBSCRIBE', sub: sub.id, topic: sub.topic, ...sub.options };
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
    return new Promise<ServerFrame>((resolve, reject) => {
      const onAbort = (): void => p.settle(new HubClientError('ABORTED', 'aborted', { cause: signal?.reason }));
      const timer = setTimeout(
        () => p.settle(new HubClientError('TIMEOUT', `no reply to ${String(frame['op'])} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      let markDone: () => void = () => undefined;
      const p: Pending = {
        frame: { ...frame, id },
        replay,
        sent: false,
        done: new Promise((r) => (markDone = r)),
        settle: (outcome) => {
          if (this.#pending.get(id) !== p) return;
          this.#pending.delete(id);
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          if (outcome instanceof HubClientError) reject(outcome);
          else resolve(outcome);
          markDone();
        },
      };
      this.#pending.set(id, p);
      signal?.addEventListener('abort', onAbort, { once: true });
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

  async #socketCtor(): Promise<SocketCtor> {
    if (this.#o.WebSocket) return this.#o.WebSocket as SocketCtor;
    if (typeof WebSocket !== 'undefined') return WebSocket as unknown as SocketCtor;
    // Node 20 has no global WebSocket. The browser build aliases `ws` away (see the Makefile).
    const ws = await import('ws');
    return ws.WebSocket as unknown as SocketCtor;
  }

  async #connect(): Promise<void> {
    if (this.#state === 'closed') return;
    let ws: SocketLike;
    try {
      ws = new (await this.#socketCtor())(this.#o.url, [PROTOCOL]);
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
    ws.onmessage = (ev) => this.#onFrame(String(ev.data));
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
    const reply = new Promise<ServerFrame>((resolve, reject) => {
      const timer = setTimeout(() => p.settle(new HubClientError('TIMEOUT', 'no reply to AUTH')), timeoutMs);
      const p: Pending = {
        frame: {},
        replay: false,
        sent: true,
        done: Promise.resolve(),
        settle: (outcome) => {
          if (this.#pending.get(id) !== p) return;
          this.#pending.delete(id);
          clearTimeout(timer);
          if (outcome instanceof HubClientError) reject(outcome);
          else resolve(outcome);
        },
      };
      this.#pending.set(id, p);
    });
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

  #onFrame(text: string): void {
    let f: ServerFrame;
    try {
      f = JSON.parse(text) as ServerFrame;
    } catch {
      return; // the gateway only sends JSON; anything else is not ours to interpret
    }
    if (f.op === 'EVENT') {
      this.#subs.get(f.sub)?.onEvent(f.event, f.delivery);
      return;
    }
    if (f.id === null) {
      if (f.op === 'ERR' && f.code === 'SUBSCRIPTION_REVOKED' && f.sub) this.#subs.delete(f.sub);
      if (f.op === 'ERR') this.#o.onError?.(new HubClientError(f.code, f.message));
      return;
    }
    const p = this.#pending.get(f.id);
    if (!p) return;
    if (f.op === 'OK') p.settle(f);
    else if (f.op === 'ERR') p.settle(new HubClientError(f.code, f.message));
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

/** Creates a client; it connects at once. Declare `T` to type topics and payloads. */
export function createClient<T extends TopicMap = Record<string, unknown>>(options: ClientOptions): HubClient<T> {
  return new Client<T>(options);
}
