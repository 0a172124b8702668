import type { StartFrom } from '../protocol/index.js';
import type { HubClientError } from './errors.js';
import { Client } from './hub-client.js';

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

/** An event named as a cause: its id, or the event itself (a handler's `event`). */
export type CauseRef = string | { readonly id: string };

/** Options for one publish. */
export interface PublishOptions {
  key?: string;
  headers?: Record<string, string>;
  /**
   * The events this one was caused by (at most 16): a handler marks the event it is
   * handling with `{ causedBy: event }`. Ops lists an event's consequences.
   */
  causedBy?: CauseRef | readonly CauseRef[];
  /** Labels subscriptions can filter on (at most 16, each 1-64 characters of `[A-Za-z0-9_.:=/-]`). */
  tags?: readonly string[];
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
  /**
   * Only events carrying every one of these tags (filtered by the gateway). For a group they
   * are part of its definition, like its topic pattern: every member names the same ones.
   */
  tags?: readonly string[];
  /**
   * Called when retention trimmed events this subscription had not read: its `from`
   * (or its group's cursor) was below the first event `partition` still holds, and it
   * goes on from `firstSeq`. The same notice also reaches `onError` as a `TRIMMED` error.
   */
  onTrimmed?: (trimmed: TrimmedNotice) => void;
}

/** Where a partition starts now that retention trimmed what a subscription had not read. */
export interface TrimmedNotice {
  readonly partition: number;
  readonly firstSeq: number;
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
  /** The events this one was caused by, when it names any. */
  causedBy?: string[];
  /** Its tags, when it has any. */
  tags?: string[];
  /**
   * W3C trace context to continue from (the gateway's delivery span, or the one the event
   * was stored with). Handlers of `subscribe` already run inside it; see `eventContext`.
   */
  traceparent?: string;
  tracestate?: string;
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

/** Creates a client; it connects at once. Declare `T` to type topics and payloads. */
export function createClient<T extends TopicMap = Record<string, unknown>>(options: ClientOptions): HubClient<T> {
  return new Client<T>(options);
}
