import type { Socket } from 'node:net';
import type { WebSocket, RawData } from 'ws';
import { AuthError, type Principal, type TokenVerifier } from '../auth/index.js';
import { describeError, isRetryable } from '../errors/index.js';
import type { EventLogRetention, EventReader, LogEvent } from '../eventlog/index.js';
import type { Logger } from '../log/index.js';
import { TopicPattern, topicProblem } from '../topic/index.js';
import type { GatewayConfig } from './config.js';
import { GatewayError } from './errors.js';
import type { PublishUseCase } from './publish.js';
import { GroupError, type GroupManager } from '../groups/index.js';
import type { LiveHub } from './hub.js';
import { groupSubscription, liveSubscription, type Subscription, type SubscriptionContext } from './subscriptions.js';
import type { GatewayMetrics } from './metrics.js';
import { CloseCode, parseClientFrame, type ClientFrame, type ErrorCode } from '../protocol/index.js';
import type { LogTail } from './tail.js';
import { TokenBucket } from './tokens.js';

/** Everything a connection needs, shared by all connections of a gateway. */
export interface ConnectionDeps {
  config: GatewayConfig;
  verifier: TokenVerifier;
  /** Replays read ranges of the log, the latest-value snapshot and where partitions start. */
  eventLog: Pick<EventReader, 'read'> & Pick<EventLogRetention, 'retention' | 'snapshot'>;
  tail: LogTail;
  hub: LiveHub;
  groups: GroupManager;
  metrics: GatewayMetrics;
  log: Logger;
  /** The PUBLISH use case (outbox write, deadline, database state). */
  publisher: PublishUseCase;
}

type State = 'authenticating' | 'open' | 'closed';

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
  readonly #subscriptionContext: SubscriptionContext;
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
    this.#subscriptionContext = {
      connectionId: id,
      config: deps.config,
      eventLog: deps.eventLog,
      tail: deps.tail,
      hub: deps.hub,
      groups: deps.groups,
      log: this.#log,
      sendEvent: (sub, event, json, delivery) => this.#sendEvent(sub, event, json, delivery),
      notice: (sub, code, message, extra) => this.#err(null, code, message, { sub, ...extra }),
      close: (code, reason) => this.close(code, reason),
    };
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
      if (err instanceof GatewayError || err instanceof GroupError) return this.#err(parsed.id, err.code, err.message);
      this.#log.error('request failed', { op: parsed.op, err });
      // Only a failure marked retryable where it happened is reported as one to retry.
      if (isRetryable(err)) this.#err(parsed.id, 'UNAVAILABLE', 'the request could not be completed; retry');
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
    const result = await this.#d.publisher.publish(f, this.#principal.subject);
    if (!result.ok) return this.#err(f.id, result.code, result.message);
    if (!result.duplicate) this.#d.tail.nudge();
    this.#ok(f.id, { eventId: result.eventId, partition: result.partition, ...(result.duplicate ? { duplicate: true } : {}) });
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
        ? liveSubscription(this.#subscriptionContext, f.sub, pattern, f.from ?? 'now', f.tags)
        : await groupSubscription(this.#subscriptionContext, f.sub, pattern, f.group, f.maxInFlight, f.from ?? 'now', f.tags);
    if (this.#state === 'closed') {
      await sub.close();
      return;
    }
    this.#subs.set(f.sub, sub);
    this.#ok(f.id, { sub: f.sub });
    sub.start();
  }
}
