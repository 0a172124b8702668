import { CloseCode, PROTOCOL, type ErrorCode, type ServerFrame, type StartFrom, type WireEvent } from '../protocol/index.js';
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

/** Connection state. */
export type ClientState = 'connecting' | 'open' | 'reconnecting' | 'closed';

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
  /** Live only: where to start. */
  from?: StartFrom;
  /** Group only: most unacked deliveries at once. */
  maxInFlight?: number;
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

interface Pending {
  frame: Record<string, unknown>;
  resolve: (f: ServerFrame) => void;
  reject: (e: HubClientError) => void;
  timer: ReturnType<typeof setTimeout>;
  /** Sent again after a reconnect (idempotent requests only). */
  replay: boolean;
  sent: boolean;
}

interface Sub {
  id: string;
  topic: string;
  options: SubscribeOptions;
  onEvent: (event: WireEvent, delivery: number) => void;
}

const OPEN = 1;
let clientIds = 0;

function toEvent<P>(e: WireEvent): HubEvent<P> {
  return { ...e, payload: e.payload as P, createdAt: new Date(e.createdAt), publishedAt: new Date(e.publishedAt) };
}

function uuid(): string {
  return crypto.randomUUID();
}

/**
 * A connection to the gateway that reconnects, resubscribes and refreshes its
 * token by itself. Create with {@link createClient}.
 */
export class HubClient<T extends TopicMap = Record<string, unknown>> {
  readonly #o: ClientOptions;
  readonly #pending = new Map<string, Pending>();
  readonly #subs = new Map<string, Sub>();
  #ws: SocketLike | undefined;
  #state: ClientState = 'connecting';
  #authed = false;
  #attempt = 0;
  #next = 0;
  #subNext = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #prefix = `c${++clientIds}`;
  readonly #ready: Promise<void>;
  #markReady: () => void = () => undefined;

  constructor(options: ClientOptions) {
    this.#o = options;
    this.#ready = new Promise((r) => (this.#markReady = r));
    options.signal?.addEventListener('abort', () => void this.close(), { once: true });
    if (options.signal?.aborted) this.#state = 'closed';
    else void this.#connect();
  }

  get state(): ClientState {
    return this.#state;
  }

  /** Resolves once connected and authenticated (the first time). */
  ready(): Promise<void> {
    return this.#ready;
  }

  /** Publishes durably; resolves with the event id. Retried with the same id across reconnects. */
  async publish<K extends keyof T & string>(topic: K, payload: T[K], options: PublishOptions = {}): Promise<string> {
    const eventId = options.eventId ?? uuid();
    const frame = {
      op: 'PUBLISH',
      topic,
      payload,
      eventId,
      ...(options.key === undefined ? {} : { key: options.key }),
      ...(options.headers === undefined ? {} : { headers: options.headers }),
    };
    try {
      await this.#request(frame, true, options.signal);
    } catch (err) {
      const e = err as HubClientError;
      throw new HubClientError(e.code, e.message, { cause: e, eventId });
    }
    return eventId;
  }

  /**
   * Subscribes `handler` to `topic` (a pattern). With a group, the delivery is
   * acked when the handler resolves and nacked when it throws. Live handlers
   * run one at a time, in order.
   */
  async subscribe<P extends string>(
    topic: P,
    options: SubscribeOptions,
    handler: (payload: PayloadOf<T, P>, event: HubEvent<PayloadOf<T, P>>) => unknown,
  ): Promise<Subscription> {
    let chain: Promise<unknown> = Promise.resolve();
    const id = `${this.#prefix}s${++this.#subNext}`;
    const run = async (wire: WireEvent): Promise<void> => {
      const event = toEvent<PayloadOf<T, P>>(wire);
      try {
        await handler(event.payload, event);
        if (options.group) await this.#settle('ACK', id, wire.id);
      } catch (err) {
        if (err instanceof HubClientError && (err.code === 'CONNECTION_LOST' || err.code === 'CLOSED')) return;
        this.#o.onError?.(new HubClientError('INTERNAL', `handler for ${topic} failed: ${String(err)}`, { cause: err }));
        if (options.group) await this.#settle('NACK', id, wire.id).catch(() => undefined);
      }
    };
    const onEvent = (wire: WireEvent): void => {
      if (options.group) void run(wire);
      else chain = chain.then(() => run(wire));
    };
    return this.#addSub(id, topic, options, onEvent);
  }

  /**
   * Async-iterator form. Each delivery is acked when the loop asks for the next
   * one (unless acked or nacked already); breaking out unsubscribes; an
   * exception in the loop body nacks the current delivery.
   */
  stream<P extends string>(
    topic: P,
    options: SubscribeOptions = {},
  ): AsyncIterableIterator<Delivery<PayloadOf<T, P>>> & { unsubscribe(): Promise<void> } {
    type D = Delivery<PayloadOf<T, P>>;
    const queue: D[] = [];
    const waiters: Array<(r: IteratorResult<D>) => void> = [];
    let current: (D & { settled: boolean }) | undefined;
    let done = false;
    let sub: Promise<Subscription> | undefined;
    const id = `${this.#prefix}s${++this.#subNext}`;
    const finish = (): void => {
      done = true;
      for (const w of waiters.splice(0)) w({ value: undefined, done: true });
    };
    const settle = async (op: 'ACK' | 'NACK', d: D & { settled: boolean }, delayMs?: number): Promise<void> => {
      if (d.settled) return;
      d.settled = true;
      if (options.group) await this.#settle(op, id, d.event.id, delayMs);
    };
    const start = (): Promise<Subscription> =>
      (sub ??= this.#addSub(id, topic, options, (wire, delivery) => {
        const d: D & { settled: boolean } = {
          event: toEvent(wire),
          delivery,
          settled: false,
          ack: () => settle('ACK', d),
          nack: (delayMs?: number) => settle('NACK', d, delayMs),
        };
        const w = waiters.shift();
        if (w) w({ value: d, done: false });
        else queue.push(d);
      }));
    const unsubscribe = async (): Promise<void> => {
      finish();
      if (sub) await (await sub).unsubscribe();
    };
    const iterator = {
      [Symbol.asyncIterator]() {
        return iterator;
      },
      next: async (): Promise<IteratorResult<D>> => {
        if (current) await current.ack().catch(() => undefined);
        current = undefined;
        await start();
        if (done) return { value: undefined, done: true };
        const d = queue.shift() ?? (await new Promise<IteratorResult<D>>((r) => waiters.push(r))).value;
        if (!d) return { value: undefined, done: true };
        current = d as D & { settled: boolean };
        return { value: d, done: false };
      },
      return: async (): Promise<IteratorResult<D>> => {
        await unsubscribe();
        return { value: undefined, done: true };
      },
      throw: async (err?: unknown): Promise<IteratorResult<D>> => {
        if (current) await current.nack().catch(() => undefined);
        await unsubscribe();
        throw err;
      },
      unsubscribe,
    };
    return iterator;
  }

  /** Closes the connection and rejects whatever is pending. Idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#setState('closed');
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#refreshTimer);
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new HubClientError('CLOSED', 'client closed'));
      this.#pending.delete(id);
    }
    this.#subs.clear();
    const ws = this.#ws;
    this.#ws = undefined;
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      ws.close(1000, 'client closed');
    }
  }

  async #addSub(id: string, topic: string, options: SubscribeOptions, onEvent: Sub['onEvent']): Promise<Subscription> {
    const sub: Sub = { id, topic, options, onEvent };
    this.#subs.set(id, sub);
    try {
      await this.#request(this.#subscribeFrame(sub), true);
    } catch (err) {
      this.#subs.delete(id);
      throw err;
    }
    return {
      id,
      unsubscribe: async () => {
        if (!this.#subs.delete(id) || this.#state === 'closed') return;
        await this.#request({ op: 'UNSUBSCRIBE', sub: id }, false).catch((err: HubClientError) => {
          if (err.code !== 'NO_SUCH_SUBSCRIPTION' && err.code !== 'CONNECTION_LOST') throw err;
        });
      },
    };
  }

  #subscribeFrame(sub: Sub): Record<string, unknown> {
    return { op: 'SUBSCRIBE', sub: sub.id, topic: sub.topic, ...sub.options };
  }

  async #settle(op: 'ACK' | 'NACK', sub: string, eventId: string, delayMs?: number): Promise<void> {
    await this.#request({ op, sub, eventId, ...(delayMs === undefined ? {} : { delayMs }) }, false).catch((err: HubClientError) => {
      // After a reconnect the gateway redelivers: there is nothing left to settle.
      if (err.code !== 'NO_SUCH_DELIVERY' && err.code !== 'CONNECTION_LOST') throw err;
    });
  }

  #request(frame: Record<string, unknown>, replay: boolean, signal?: AbortSignal): Promise<ServerFrame> {
    if (this.#state === 'closed') return Promise.reject(new HubClientError('CLOSED', 'client closed'));
    if (signal?.aborted) return Promise.reject(new HubClientError('ABORTED', 'aborted'));
    const id = `${this.#prefix}r${++this.#next}`;
    return new Promise<ServerFrame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new HubClientError('TIMEOUT', `no reply to ${String(frame['op'])} within ${this.#o.requestTimeoutMs ?? 10_000} ms`));
      }, this.#o.requestTimeoutMs ?? 10_000);
      const p: Pending = { frame: { ...frame, id }, resolve, reject, timer, replay, sent: false };
      this.#pending.set(id, p);
      signal?.addEventListener(
        'abort',
        () => {
          if (!this.#pending.delete(id)) return;
          clearTimeout(timer);
          reject(new HubClientError('ABORTED', 'aborted'));
        },
        { once: true },
      );
      if (this.#authed) this.#send(p);
    });
  }

  #send(p: Pending): void {
    if (this.#ws?.readyState !== OPEN) return;
    p.sent = true;
    this.#ws.send(JSON.stringify(p.frame));
  }

  #setState(state: ClientState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#o.onStateChange?.(state);
  }

  async #socketCtor(): Promise<SocketCtor> {
    if (this.#o.WebSocket) return this.#o.WebSocket as SocketCtor;
    if (typeof WebSocket !== 'undefined') return WebSocket as unknown as SocketCtor;
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
    const reply = new Promise<ServerFrame>((resolve, reject) => {
      const timer = setTimeout(() => reject(new HubClientError('TIMEOUT', 'no reply to AUTH')), this.#o.requestTimeoutMs ?? 10_000);
      this.#pending.set(id, { frame: {}, resolve, reject, timer, replay: false, sent: true });
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
    // Resubscribe, then send everything queued (publishes keep their event ids).
    for (const sub of this.#subs.values()) {
      if ([...this.#pending.values()].some((p) => p.frame['op'] === 'SUBSCRIBE' && p.frame['sub'] === sub.id)) continue;
      void this.#request(this.#subscribeFrame(sub), false).catch((err: HubClientError) => this.#o.onError?.(err));
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
      return;
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
    this.#pending.delete(f.id);
    clearTimeout(p.timer);
    if (f.op === 'OK') p.resolve(f);
    else if (f.op === 'ERR') p.reject(new HubClientError(f.code as ErrorCode, f.message));
  }

  #onClose(ws: SocketLike, code: number): void {
    if (ws !== this.#ws) return;
    this.#ws = undefined;
    this.#authed = false;
    clearTimeout(this.#refreshTimer);
    if (this.#state === 'closed') return;
    // Requests that cannot be replayed fail now; idempotent ones wait for the next connection.
    for (const [id, p] of this.#pending) {
      if (p.replay) {
        p.sent = false;
        continue;
      }
      this.#pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new HubClientError('CONNECTION_LOST', `connection closed (${code}) before a reply`));
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
  return new HubClient<T>(options);
}
