import type { Socket } from 'node:net';
import type { WebSocket, RawData } from 'ws';
import { AuthError, type Principal, type TokenVerifier } from '../auth/index.js';
import { describeError, isHubError } from '../errors/index.js';
import type { EventLog, LogEvent } from '../eventlog/index.js';
import type { Logger } from '../log/index.js';
import { isDocumentRejectedError, isTransientError } from '../mongo/index.js';
import type { Outbox } from '../outbox/index.js';
import { TopicPattern, topicProblem } from '../topic/index.js';
import type { GatewayConfig } from './config.js';
import { GatewayError } from './errors.js';
import type { GroupManager, GroupMember, GroupMembership } from './groups.js';
import { LiveHub, toWire, type LiveSubscription } from './hub.js';
import type { GatewayMetrics } from './metrics.js';
import { CloseCode, parseClientFrame, type ClientFrame, type ErrorCode, type StartFrom } from '../protocol/index.js';
import type { LogTail } from './tail.js';
import { TokenBucket } from './tokens.js';

/** Everything a connection needs, shared by all connections of a gateway. */
export interface ConnectionDeps {
  config: GatewayConfig;
  verifier: TokenVerifier;
  outbox: Outbox;
  eventLog: EventLog;
  tail: LogTail;
  hub: LiveHub;
  groups: GroupManager;
  metrics: GatewayMetrics;
  log: Logger;
  /** The database as the probe sees it: requests needing it are refused at once while it is down. */
  database?: DatabaseState;
}

/** Whether the database answers its probe, and the moment it stops. */
export interface DatabaseState {
  up(): boolean;
  /** Calls `listener` when the database is found down; returns its removal. */
  onDown(listener: () => void): () => void;
}

type State = 'authenticating' | 'open' | 'closed';

/** True when `err`, or an error it wraps, is a storage failure that may pass if retried. */
function retryable(err: unknown): boolean {
  let e: unknown = err;
  for (let i = 0; i < 5 && e !== undefined; i++) {
    if (isTransientError(e)) return true;
    e = e instanceof Error ? e.cause : undefined;
  }
  return false;
}

/** The publish took longer than the deadline: it may still land (a retry with its id is safe). */
class DeadlineError extends GatewayError {
  constructor(why: string) {
    super('UNAVAILABLE', `${why}; it may still land: retry with the same eventId`);
  }
}

/**
 * `promise`, or a {@link DeadlineError} after `ms` or as soon as the database is
 * found down (a request sent just before an outage is answered when the probe
 * notices, not after the whole deadline). Neither the timer nor the listener
 * outlives the race.
 */
async function withDeadline<T>(promise: Promise<T>, ms: number, database?: DatabaseState): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let unlisten: (() => void) | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new DeadlineError(`the database did not confirm within ${ms} ms`)), ms);
        unlisten = database?.onDown(() => reject(new DeadlineError('the database became unreachable')));
      }),
    ]);
  } finally {
    clearTimeout(timer);
    unlisten?.();
  }
}

/** Most bytes gathered for one write before the socket is flushed within a tick. */
const MAX_CORKED_BYTES = 64 * 1024;

/** Frames that change a connection's authentication or subscriptions: run one at a time. */
const CONTROL_OPS: ReadonlySet<ClientFrame['op']> = new Set(['AUTH', 'SUBSCRIBE', 'UNSUBSCRIBE']);
/** Control frames one connection may have waiting (each may wait on the database). */
const MAX_QUEUED_CONTROL = 64;

/** Consecutive malformed frames tolerated before the connection is closed. */
const MAX_BAD_FRAMES = 10;
/** How long a slow consumer gets to read up to the close frame before its socket is destroyed. */
const SLOW_CONSUMER_GRACE_MS = 5_000;
/** setTimeout's upper bound. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Subscription {
  readonly id: string;
  readonly pattern: TopicPattern;
  /** The group of a group subscription, and the membership settlements go through. */
  readonly group: { readonly name: string; readonly membership: GroupMembership } | undefined;
  /** Starts deliveries; called once the SUBSCRIBE's OK has been sent, so no EVENT precedes it. */
  start(): void;
  close(): Promise<void>;
}

/**
 * One WebSocket client. States: authenticating (must AUTH before the deadline)
 * -> open -> closed. `close` is idempotent and releases everything the
 * connection created: timers, hub entries and group memberships.
 */
export class Connection {
  readonly id: string;
  readonly #ws: WebSocket;
  readonly #socket: Socket | undefined;
  /** Bytes sent since the socket was corked in this tick (0: not corked). */
  #corked = 0;
  readonly #d: ConnectionDeps;
  readonly #log: Logger;
  readonly #subs = new Map<string, Subscription>();
  readonly #publishBucket: TokenBucket;
  readonly #frameBucket: TokenBucket;
  #state: State = 'authenticating';
  #principal: Principal | undefined;
  #authTimer: NodeJS.Timeout | undefined;
  #expiryTimer: NodeJS.Timeout | undefined;
  #badFrames = 0;
  #authPending: Promise<void> | undefined;
  /**
   * AUTH, SUBSCRIBE and UNSUBSCRIBE run one at a time, in arrival order: a check and
   * the subscription-table update it guards never have another control frame between
   * them, whatever the awaits in between (a group join waits on the database).
   */
  #control: Promise<void> = Promise.resolve();
  #controlQueued = 0;
  /** Answered the last heartbeat ping. */
  alive = true;

  /**
   * @param socket the connection's TCP socket: frames sent in one tick are
   * gathered (corked) and reach the kernel in one write, so a fan-out costs one
   * system call per connection per batch instead of one per event.
   */
  constructor(id: string, ws: WebSocket, deps: ConnectionDeps, socket?: Socket) {
    this.id = id;
    this.#ws = ws;
    this.#socket = socket;
    this.#d = deps;
    this.#log = deps.log.child({ conn: id });
    this.#publishBucket = new TokenBucket(deps.config.publishRate, deps.config.publishBurst);
    this.#frameBucket = new TokenBucket(deps.config.frameRate, deps.config.frameRate);
  }

  get state(): State {
    return this.#state;
  }

  start(): void {
    this.#d.metrics.connections.inc();
    this.#authTimer = setTimeout(() => this.close(CloseCode.AUTH_TIMEOUT, 'no AUTH before the deadline'), this.#d.config.authTimeoutMs);
    this.#ws.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
    this.#ws.on('pong', () => (this.alive = true));
    this.#ws.on('close', () => this.#closed());
    this.#ws.on('error', (err) => {
      // ws reports oversized frames here, then closes with 1009 itself.
      this.#log.debug('socket error', { err: describeError(err) });
    });
  }

  /** Closes with `code`; idempotent. */
  close(code: number, reason: string): void {
    if (this.#state === 'closed') return;
    this.#d.metrics.closes.inc({ code: String(code) });
    this.#closed();
    try {
      this.#ws.close(code, reason.slice(0, 120));
    } catch {
      this.#ws.terminate();
    }
  }

  /** Hard stop for a peer that stopped answering pings. */
  terminate(): void {
    this.#closed();
    this.#ws.terminate();
  }

  ping(): void {
    this.alive = false;
    this.#ws.ping();
  }

  #closed(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#d.metrics.connections.dec();
    clearTimeout(this.#authTimer);
    clearTimeout(this.#expiryTimer);
    const subs = [...this.#subs.values()];
    this.#subs.clear();
    for (const s of subs)
      void s.close().catch((err: unknown) => this.#log.warn('unsubscribe on close failed', { err: describeError(err) }));
  }

  /**
   * Sends a text frame unless the socket is closed or past its high-water mark.
   * The mark applies to what this process holds queued for the socket
   * (ws.bufferedAmount: frames the kernel has not taken yet), which is the memory a
   * slow consumer costs the gateway; the kernel's own socket buffers come on top.
   */
  #sendText(op: string, text: string): boolean {
    if (this.#state === 'closed') return false;
    const buffered = this.#ws.bufferedAmount;
    if (buffered > this.#d.config.sendHighWaterBytes) {
      this.#d.metrics.slowConsumerBuffered.observe(buffered);
      this.#log.warn('slow consumer closed', { bufferedBytes: buffered, highWaterBytes: this.#d.config.sendHighWaterBytes });
      this.close(CloseCode.SLOW_CONSUMER, 'slow consumer: send buffer over its high-water mark');
      // The close frame waits behind the queue; a peer that still does not read is cut off
      // so the queue is freed in seconds, not after ws's 30 s closing timeout.
      const cut = setTimeout(() => this.#ws.terminate(), SLOW_CONSUMER_GRACE_MS);
      cut.unref();
      this.#ws.once('close', () => clearTimeout(cut));
      return false;
    }
    this.#gather(text.length);
    this.#ws.send(text);
    this.#d.metrics.framesOut.inc({ op });
    return true;
  }

  /** Corks the socket for the rest of this tick, flushing early past {@link MAX_CORKED_BYTES}. */
  #gather(bytes: number): void {
    const socket = this.#socket;
    if (!socket || socket.destroyed) return;
    if (this.#corked === 0) {
      socket.cork();
      process.nextTick(() => {
        this.#corked = 0;
        socket.uncork();
      });
    } else if (this.#corked > MAX_CORKED_BYTES) {
      // Let what is gathered go now; the tick's uncork still balances the one cork.
      socket.uncork();
      socket.cork();
      this.#corked = 1;
    }
    this.#corked += bytes;
  }

  #ok(id: string, extra: Record<string, unknown> = {}): void {
    this.#sendText('OK', JSON.stringify({ op: 'OK', id, ...extra }));
  }

  #err(id: string | null, code: ErrorCode, message: string, extra: Record<string, unknown> = {}): void {
    this.#sendText('ERR', JSON.stringify({ op: 'ERR', id, code, message, ...extra }));
  }

  #sendEvent(sub: string, event: LogEvent, json: string, delivery: number): boolean {
    const ok = this.#sendText('EVENT', `{"op":"EVENT","sub":${JSON.stringify(sub)},"delivery":${delivery},"event":${json}}`);
    if (ok) this.#d.metrics.publishToDeliver.observe(Math.max(0, Date.now() - event.createdAt.getTime()) / 1000);
    return ok;
  }

  #onMessage(data: RawData, isBinary: boolean): void {
    if (this.#state === 'closed') return;
    if (!this.#frameBucket.take()) {
      this.close(CloseCode.RATE_LIMITED, 'frame rate limit exceeded');
      return;
    }
    if (isBinary) {
      this.#bad(null, 'BAD_FRAME', 'binary frames are not part of the protocol');
      return;
    }
    // ws hands text frames over as one Buffer (binaryType 'nodebuffer', the default).
    const parsed = parseClientFrame((data as Buffer).toString('utf8'));
    if (!('op' in parsed)) {
      this.#d.metrics.framesIn.inc({ op: 'invalid' });
      this.#bad(parsed.id, parsed.code, parsed.message);
      return;
    }
    this.#badFrames = 0;
    this.#d.metrics.framesIn.inc({ op: parsed.op });
    let run: Promise<void>;
    if (CONTROL_OPS.has(parsed.op)) {
      if (this.#controlQueued >= MAX_QUEUED_CONTROL) {
        this.#err(parsed.id, 'RATE_LIMITED', `more than ${MAX_QUEUED_CONTROL} AUTH/SUBSCRIBE/UNSUBSCRIBE waiting; wait for their answers`);
        return;
      }
      this.#controlQueued++;
      run = this.#control.then(() => this.#handle(parsed)).finally(() => this.#controlQueued--);
      // The next control frame waits for this one to settle; its failure is answered by `run` below.
      this.#control = run.catch(() => undefined);
    } else {
      // Requests pipelined behind an AUTH wait for it, so AUTH + PUBLISH in one go works.
      run = this.#authPending ? this.#authPending.then(() => this.#handle(parsed)) : this.#handle(parsed);
    }
    if (parsed.op === 'AUTH') {
      // Requests queued behind the AUTH only wait for it; its failure is answered by `run` itself.
      const pending = run.catch(() => undefined);
      this.#authPending = pending;
      void pending.then(() => {
        if (this.#authPending === pending) this.#authPending = undefined;
      });
    }
    run.catch((err: unknown) => {
      if (err instanceof GatewayError) return this.#err(parsed.id, err.code, err.message);
      this.#log.error('request failed', { op: parsed.op, err });
      // Only a failure that can pass is reported as one to retry.
      if (retryable(err)) this.#err(parsed.id, 'UNAVAILABLE', 'the request could not be completed; retry');
      else this.#err(parsed.id, 'INTERNAL', 'the request failed; retrying it unchanged will not help');
      // An AUTH that failed half-way must not leave a session behind.
      if (parsed.op === 'AUTH') this.close(CloseCode.AUTH_FAILED, 'authentication failed');
    });
  }

  #bad(id: string | null, code: ErrorCode, message: string): void {
    this.#err(id, code, message);
    if (++this.#badFrames >= MAX_BAD_FRAMES) this.close(CloseCode.POLICY_VIOLATION, 'too many malformed frames');
  }

  async #handle(f: ClientFrame): Promise<void> {
    if (f.op === 'PING') return this.#ok(f.id);
    if (f.op === 'AUTH') return this.#auth(f.id, f.token);
    if (this.#state !== 'open' || !this.#principal) {
      this.#err(f.id, 'NOT_AUTHENTICATED', 'send AUTH first');
      return;
    }
    switch (f.op) {
      case 'PUBLISH':
        return this.#publish(f);
      case 'SUBSCRIBE':
        return this.#subscribe(f);
      case 'UNSUBSCRIBE': {
        const s = this.#subs.get(f.sub);
        if (!s) return this.#err(f.id, 'NO_SUCH_SUBSCRIPTION', `no subscription ${f.sub}`);
        this.#subs.delete(f.sub);
        await s.close();
        return this.#ok(f.id, { sub: f.sub });
      }
      case 'ACK':
      case 'NACK': {
        const s = this.#subs.get(f.sub);
        if (!s) return this.#err(f.id, 'NO_SUCH_SUBSCRIPTION', `no subscription ${f.sub}`);
        // Live subscriptions are at-most-once: there is nothing to settle.
        if (s.group === undefined) return this.#ok(f.id);
        // Only the member the event was delivered to may settle it.
        const { membership } = s.group;
        const done = f.op === 'ACK' ? membership.ack(f.eventId) : membership.nack(f.eventId, f.delayMs);
        return done
          ? this.#ok(f.id)
          : this.#err(f.id, 'NO_SUCH_DELIVERY', `no delivery ${f.eventId} in flight (already settled, or its partition moved)`);
      }
    }
  }

  async #auth(id: string, token: string): Promise<void> {
    let principal: Principal;
    try {
      principal = await this.#d.verifier.verify(token);
    } catch (err) {
      const reason = err instanceof AuthError ? err.code : 'TOKEN_MALFORMED';
      this.#d.metrics.authFailures.inc({ reason });
      this.#err(id, 'AUTH_FAILED', `authentication failed: ${reason}`, { reason });
      this.close(reason === 'TOKEN_EXPIRED' ? CloseCode.TOKEN_EXPIRED : CloseCode.AUTH_FAILED, `auth failed: ${reason}`);
      return;
    }
    if (this.#state === 'closed') return;
    if (this.#principal && this.#principal.subject !== principal.subject) {
      this.#d.metrics.authFailures.inc({ reason: 'SUBJECT_CHANGED' });
      this.#err(id, 'AUTH_FAILED', 'a connection keeps its subject; reconnect to change it', { reason: 'SUBJECT_CHANGED' });
      this.close(CloseCode.AUTH_FAILED, 'subject changed');
      return;
    }
    this.#principal = principal;
    this.#state = 'open';
    clearTimeout(this.#authTimer);
    this.#armExpiry(principal.expiresAt.getTime());
    // An expiry already past closed the connection: nothing more to answer.
    if ((this.#state as State) === 'closed') return;
    // A refreshed token may grant less: drop what is no longer allowed.
    for (const s of [...this.#subs.values()]) {
      if (principal.policy.canSubscribe(s.pattern, s.group?.name)) continue;
      this.#subs.delete(s.id);
      await s.close();
      this.#d.metrics.aclDenials.inc({ op: 'SUBSCRIBE' });
      const what = s.group ? `${s.pattern.source} in group ${s.group.name}` : s.pattern.source;
      this.#err(null, 'SUBSCRIPTION_REVOKED', `the new token does not allow ${what}`, { sub: s.id });
    }
    this.#ok(id, { subject: principal.subject, expiresAt: principal.expiresAt.toISOString() });
  }

  #armExpiry(at: number): void {
    clearTimeout(this.#expiryTimer);
    const delay = at - Date.now();
    if (delay <= 0) {
      this.close(CloseCode.TOKEN_EXPIRED, 'token expired');
      return;
    }
    this.#expiryTimer = setTimeout(
      () => {
        if (Date.now() >= at) this.close(CloseCode.TOKEN_EXPIRED, 'token expired; AUTH again before expiry to stay connected');
        else this.#armExpiry(at);
      },
      Math.min(delay, MAX_TIMER_MS),
    );
  }

  async #publish(f: Extract<ClientFrame, { op: 'PUBLISH' }>): Promise<void> {
    const problem = topicProblem(f.topic);
    if (problem !== undefined) return this.#err(f.id, 'INVALID_TOPIC', problem);
    if (!this.#principal?.policy.canPublish(f.topic)) {
      this.#d.metrics.aclDenials.inc({ op: 'PUBLISH' });
      return this.#err(f.id, 'FORBIDDEN', `not allowed to publish to ${f.topic}`);
    }
    if (!this.#publishBucket.take()) return this.#err(f.id, 'RATE_LIMITED', 'publish rate limit exceeded; slow down');
    // Known down: say so at once instead of making the client wait for a timeout.
    if (this.#d.database?.up() === false) return this.#err(f.id, 'UNAVAILABLE', 'the database is unreachable; retry');
    try {
      const receipt = await this.#bounded(
        this.#d.outbox.add(
          {
            topic: f.topic,
            payload: f.payload,
            ...(f.key === undefined ? {} : { key: f.key }),
            ...(f.headers === undefined ? {} : { headers: f.headers }),
            ...(f.eventId === undefined ? {} : { id: f.eventId }),
          },
          // A retried publish (same eventId, same message, same subject) is answered as a
          // duplicate; the same eventId for anything else is refused by the outbox.
          { idempotent: true, publisher: this.#principal.subject },
        ),
      );
      if (!receipt.duplicate) this.#d.tail.nudge();
      this.#ok(f.id, { eventId: receipt.id, partition: receipt.partition, ...(receipt.duplicate ? { duplicate: true } : {}) });
    } catch (err) {
      if (!isHubError(err)) throw err;
      if (err.code === 'DUPLICATE_ID') return this.#err(f.id, 'DUPLICATE_ID', 'eventId already used for a different message');
      const map: Record<string, ErrorCode> = {
        INVALID_TOPIC: 'INVALID_TOPIC',
        PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
        INVALID_PAYLOAD: 'INVALID_PAYLOAD',
        INVALID_KEY: 'INVALID_PAYLOAD',
        INVALID_HEADERS: 'INVALID_PAYLOAD',
        INVALID_ID: 'INVALID_PAYLOAD',
      };
      const code = map[err.code];
      if (code) return this.#err(f.id, code, err.message);
      // Validation should leave nothing for the server to refuse; if it still does, say so rather than "retry".
      if (err.code === 'WRITE_FAILED' && isDocumentRejectedError(err.cause))
        return this.#err(f.id, 'INVALID_PAYLOAD', 'the database refused to store this event');
      throw err;
    }
  }

  /** A database request a client is waiting on: UNAVAILABLE after PUBLISH_TIMEOUT or once the database is known down. */
  #bounded<T>(request: Promise<T>): Promise<T> {
    return withDeadline(request, this.#d.config.publishTimeoutMs, this.#d.database);
  }

  async #subscribe(f: Extract<ClientFrame, { op: 'SUBSCRIBE' }>): Promise<void> {
    if (this.#subs.has(f.sub)) return this.#err(f.id, 'SUBSCRIPTION_EXISTS', `subscription ${f.sub} exists`);
    if (this.#subs.size >= this.#d.config.maxSubscriptions) {
      return this.#err(f.id, 'TOO_MANY_SUBSCRIPTIONS', `at most ${this.#d.config.maxSubscriptions} subscriptions per connection`);
    }
    let pattern: TopicPattern;
    try {
      pattern = TopicPattern.compile(f.topic);
    } catch (err) {
      return this.#err(f.id, 'INVALID_PATTERN', (err as Error).message);
    }
    if (!this.#principal?.policy.canSubscribe(pattern, f.group)) {
      this.#d.metrics.aclDenials.inc({ op: 'SUBSCRIBE' });
      const what = f.group === undefined ? f.topic : `${f.topic} in group ${f.group}`;
      return this.#err(f.id, 'FORBIDDEN', `not allowed to subscribe to ${what}`);
    }
    const sub =
      f.group === undefined
        ? this.#liveSubscription(f.sub, pattern, f.from ?? 'now')
        : await this.#groupSubscription(f.sub, pattern, f.group, f.maxInFlight, f.from ?? 'now');
    if (this.#state === 'closed') {
      await sub.close();
      return;
    }
    this.#subs.set(f.sub, sub);
    this.#ok(f.id, { sub: f.sub });
    sub.start();
  }

  async #groupSubscription(
    id: string,
    pattern: TopicPattern,
    group: string,
    maxInFlight: number | undefined,
    from: StartFrom,
  ): Promise<Subscription> {
    const member: GroupMember = {
      id: `${this.id}/${id}`,
      maxInFlight: Math.min(maxInFlight ?? this.#d.config.maxInFlight, this.#d.config.maxInFlight),
      send: (event, delivery) => this.#sendEvent(id, event, JSON.stringify(toWire(event)), delivery),
    };
    const membership = await this.#d.groups.join(group, pattern, member, from);
    return { id, pattern, group: { name: group, membership }, start: () => membership.activate(), close: () => membership.leave() };
  }

  #liveSubscription(id: string, pattern: TopicPattern, from: StartFrom): Subscription {
    const hub = this.#d.hub;
    let replaying = from !== 'now';
    let held: Array<[LogEvent, string]> = [];
    const sent = new Map<number, number>();
    // Once unsubscribed or revoked nothing more is sent, a replay under way included.
    const state = { closed: false };
    const live: LiveSubscription = {
      pattern,
      offer: (event, json) => {
        if (state.closed) return;
        if (replaying) {
          if (held.length >= this.#d.config.maxReplay) this.close(CloseCode.SLOW_CONSUMER, 'too many events arrived during replay');
          else held.push([event, json]);
          return;
        }
        this.#sendEvent(id, event, json, 1);
      },
    };
    hub.add(live);
    const start = (): void => {
      if (!replaying) return;
      void this.#replay(id, pattern, from, sent, state)
        .catch((err: unknown) => {
          if (state.closed) return;
          this.#log.warn('replay failed', { sub: id, err: describeError(err) });
          this.#err(null, 'UNAVAILABLE', 'replay failed; resubscribe to retry', { sub: id });
        })
        .finally(() => {
          if (!state.closed)
            for (const [event, json] of held) if (event.seq > (sent.get(event.partition) ?? 0)) this.#sendEvent(id, event, json, 1);
          held = [];
          replaying = false;
        });
    };
    return {
      id,
      pattern,
      group: undefined,
      start,
      close: () => {
        state.closed = true;
        held = [];
        hub.remove(live);
        return Promise.resolve();
      },
    };
  }

  /** Sends committed events after `from`, up to the tail's position at the start, in order per partition. */
  async #replay(
    id: string,
    pattern: TopicPattern,
    from: StartFrom,
    sent: Map<number, number>,
    sub: { readonly closed: boolean },
  ): Promise<void> {
    const { eventLog, tail, config } = this.#d;
    const starts = new Map<number, number>();
    for (let p = 0; p < config.partitions; p++) {
      if (from === 'earliest') starts.set(p, 0);
      else if (typeof from === 'object' && from[String(p)] !== undefined) starts.set(p, from[String(p)] as number);
    }
    let budget = config.maxReplay;
    for (const [partition, after] of starts) {
      const until = tail.position(partition);
      let cursor = after;
      while (cursor < until && budget > 0 && !sub.closed) {
        const events = await eventLog.read({ partition, afterSeq: cursor, limit: Math.min(500, budget) });
        if (events.length === 0) break;
        for (const e of events) {
          if (e.seq > until || sub.closed) break;
          cursor = e.seq;
          if (e.gap || !pattern.matches(e.topic)) continue;
          budget--;
          this.#sendEvent(id, e, JSON.stringify(toWire(e)), 1);
        }
        if (events.length < 500) break;
      }
      sent.set(partition, Math.max(cursor, until));
    }
    if (budget <= 0 && !sub.closed) this.#err(null, 'REPLAY_TRUNCATED', `replay stopped after ${config.maxReplay} events`, { sub: id });
  }
}
