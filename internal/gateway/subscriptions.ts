import { describeError } from '../errors/index.js';
import type { EventLogRetention, EventReader, LogEvent, SnapshotCursor } from '../eventlog/index.js';
import type { GroupManager, GroupMember, GroupMembership } from '../groups/index.js';
import type { Logger } from '../log/index.js';
import { CloseCode, type ErrorCode, type StartFrom } from '../protocol/index.js';
import type { TopicPattern } from '../topic/index.js';
import type { GatewayConfig } from './config.js';
import { SpanStatusCode } from '../tracecontext/index.js';
import { deliverSpan, hasTags, type LiveHub, type LiveSubscription } from './hub.js';
import type { LogTail } from './tail.js';

/** One subscription of a connection, live or a consumer-group membership. */
export interface Subscription {
  readonly id: string;
  readonly pattern: TopicPattern;
  /** The group of a group subscription, and the membership settlements go through. */
  readonly group: { readonly name: string; readonly membership: GroupMembership } | undefined;
  /** Starts deliveries; called once the SUBSCRIBE's OK has been sent, so no EVENT precedes it. */
  start(): void;
  /** Ends it: nothing is sent for it afterwards, a replay under way included. */
  close(): Promise<void>;
}

/** What a connection lends the subscriptions it creates. */
export interface SubscriptionContext {
  /** The connection's id (group members are named `<connection>/<sub>`). */
  readonly connectionId: string;
  readonly config: Pick<GatewayConfig, 'maxInFlight' | 'maxReplay' | 'partitions' | 'retention'>;
  readonly eventLog: Pick<EventReader, 'read'> & Pick<EventLogRetention, 'retention' | 'snapshot'>;
  readonly tail: Pick<LogTail, 'position'>;
  readonly hub: LiveHub;
  readonly groups: GroupManager;
  readonly log: Logger;
  /** Sends an EVENT frame; false when the connection can no longer receive. */
  sendEvent(sub: string, event: LogEvent, json: string, delivery: number): boolean;
  /** Sends a notice about subscription `sub` (an ERR with no request id), with extra fields. */
  notice(sub: string, code: ErrorCode, message: string, extra?: Record<string, unknown>): void;
  /** Closes the connection. */
  close(code: number, reason: string): void;
}

/** A consumer-group membership, delivering through the connection until it leaves. */
export async function groupSubscription(
  ctx: SubscriptionContext,
  id: string,
  pattern: TopicPattern,
  group: string,
  maxInFlight: number | undefined,
  from: StartFrom,
  tags: readonly string[] | undefined,
): Promise<Subscription> {
  const member: GroupMember = {
    id: `${ctx.connectionId}/${id}`,
    maxInFlight: Math.min(maxInFlight ?? ctx.config.maxInFlight, ctx.config.maxInFlight),
    send: (event, delivery, replay) => {
      // A redelivery or an operator's replay starts a new trace linked to the event's: its
      // first delivery's trace ended long ago.
      const again = delivery > 1 || replay === true;
      const { json, span } = deliverSpan(event, { group, delivery }, again, replay === true ? { 'outbox_hub.replay': true } : undefined);
      const sent = ctx.sendEvent(id, event, json, delivery);
      if (span && !sent) span.setStatus({ code: SpanStatusCode.ERROR, message: 'the member can no longer receive' });
      span?.end();
      return sent;
    },
    trimmed: (partition, firstSeq) =>
      ctx.notice(
        id,
        'TRIMMED',
        `group ${group}: partition ${partition} skipped to ${firstSeq}, events before it were trimmed by retention`,
        {
          partition,
          firstSeq,
        },
      ),
  };
  // Tags are part of the group's definition, checked like its filter: events without them are passed over.
  const membership = await ctx.groups.join(group, pattern, member, from, tags ?? []);
  return { id, pattern, group: { name: group, membership }, start: () => membership.activate(), close: () => membership.leave() };
}

/**
 * A live subscription: from now, or a replay from `from` (or the latest-value
 * snapshot) followed by the live tail. Events arriving during the replay are held,
 * up to MAX_REPLAY, and sent after it unless the replay already covered them; an
 * event at or below where the replay ended in its partition is never sent twice.
 */
export function liveSubscription(
  ctx: SubscriptionContext,
  id: string,
  pattern: TopicPattern,
  from: StartFrom,
  tags?: readonly string[],
): Subscription {
  const hub = ctx.hub;
  let replaying = from !== 'now';
  let held: Array<[LogEvent, string]> = [];
  const sent = new Map<number, number>();
  const snapshot = new SnapshotSeen();
  // Once unsubscribed or revoked nothing more is sent, a replay under way included.
  const state = { closed: false };
  const fresh = (event: LogEvent): boolean => event.seq > (sent.get(event.partition) ?? 0) && !snapshot.covers(event);
  const live: LiveSubscription = {
    pattern,
    ...(tags === undefined ? {} : { tags }),
    offer: (event, json) => {
      if (state.closed) return;
      if (replaying) {
        if (held.length >= ctx.config.maxReplay) ctx.close(CloseCode.SLOW_CONSUMER, 'too many events arrived during replay');
        else held.push([event, json]);
        return;
      }
      if (fresh(event)) ctx.sendEvent(id, event, json, 1);
    },
  };
  hub.add(live);
  const start = (): void => {
    if (!replaying) return;
    const run =
      from === 'snapshot'
        ? replaySnapshot(ctx, id, pattern, tags, sent, snapshot, state)
        : replay(ctx, id, pattern, tags, from, sent, state);
    void run
      .catch((err: unknown) => {
        if (state.closed) return;
        ctx.log.warn('replay failed', { sub: id, err: describeError(err) });
        ctx.notice(id, 'UNAVAILABLE', 'replay failed; resubscribe to retry');
      })
      .finally(() => {
        if (!state.closed) for (const [event, json] of held) if (fresh(event)) ctx.sendEvent(id, event, json, 1);
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

/**
 * What a snapshot subscription sent from the snapshot: each key's sequence, and per
 * partition the highest of them. Bounded by MAX_REPLAY entries, and only consulted for
 * events at or below those sequences.
 */
class SnapshotSeen {
  readonly #keys = new Map<string, number>();
  readonly #upTo = new Map<number, number>();

  /** `e` was sent as its key's latest value. */
  add(e: LogEvent): void {
    this.#keys.set(`${e.topic}/${e.key}`, e.seq);
    this.#upTo.set(e.partition, Math.max(this.#upTo.get(e.partition) ?? 0, e.seq));
  }

  /** True when `e` is a key's event the snapshot already sent, or older than the one it sent. */
  covers(e: LogEvent): boolean {
    if (e.key === null || e.seq > (this.#upTo.get(e.partition) ?? 0)) return false;
    return (this.#keys.get(`${e.topic}/${e.key}`) ?? 0) >= e.seq;
  }
}

/** Events read per replay page. */
const PAGE = 500;

/**
 * Where each partition's replay starts: after `from`, but never below what retention kept
 * (announced when asked for, unless the subscription wants only tagged events and no event
 * with tags was trimmed after `from`: nothing it asked for is missing).
 */
async function replayStarts(
  ctx: SubscriptionContext,
  id: string,
  from: StartFrom,
  tags: readonly string[] | undefined,
): Promise<Map<number, number>> {
  const starts = new Map<number, number>();
  for (let p = 0; p < ctx.config.partitions; p++) {
    const asked = from === 'earliest' ? 0 : typeof from === 'object' ? from[String(p)] : undefined;
    if (asked === undefined) continue;
    const { first, taggedTo } = await ctx.eventLog.retention(p);
    const missed = tags === undefined || tags.length === 0 || taggedTo > asked;
    if (asked < first - 1 && from !== 'earliest' && missed)
      ctx.notice(id, 'TRIMMED', `partition ${p} starts at ${first}: events up to ${first - 1} were trimmed by retention`, {
        partition: p,
        firstSeq: first,
      });
    starts.set(p, Math.max(asked, first - 1));
  }
  return starts;
}

/** Sends committed events after `from`, up to the tail's position at the start, in order per partition. */
async function replay(
  ctx: SubscriptionContext,
  id: string,
  pattern: TopicPattern,
  tags: readonly string[] | undefined,
  from: StartFrom,
  sent: Map<number, number>,
  sub: { readonly closed: boolean },
): Promise<void> {
  const starts = await replayStarts(ctx, id, from, tags);
  const budget = { left: ctx.config.maxReplay };
  for (const [partition, after] of starts) {
    if (sub.closed) return;
    const until = ctx.tail.position(partition);
    const cursor = await replayRange(ctx, id, partition, after, until, budget, sub, (e) => pattern.matches(e.topic) && hasTags(e, tags));
    sent.set(partition, Math.max(cursor, until));
  }
  if (budget.left <= 0 && !sub.closed) ctx.notice(id, 'REPLAY_TRUNCATED', `replay stopped after ${ctx.config.maxReplay} events`);
}

/**
 * Sends the latest event of every key of the filter's compacted topics from the
 * snapshot, then what was appended between the snapshot's watermark and the tail's
 * position (compacted topics only, never an older value of a key already sent), then
 * the live tail takes over.
 */
async function replaySnapshot(
  ctx: SubscriptionContext,
  id: string,
  pattern: TopicPattern,
  tags: readonly string[] | undefined,
  sent: Map<number, number>,
  seen: SnapshotSeen,
  sub: { readonly closed: boolean },
): Promise<void> {
  const { retention, maxReplay, partitions } = ctx.config;
  // Watermarks first: every event up to them is in the snapshot read after.
  const marks = new Map<number, number>();
  for (let p = 0; p < partitions; p++) marks.set(p, (await ctx.eventLog.retention(p)).compactedTo);
  const budget = { left: maxReplay };
  let after: SnapshotCursor | undefined;
  while (budget.left > 0 && !sub.closed) {
    const page = await ctx.eventLog.snapshot(pattern, after, Math.min(PAGE, budget.left));
    for (const e of page) {
      if (sub.closed) return;
      if (e.payload === null) continue; // a tombstone: the key is gone
      seen.add(e);
      if (!hasTags(e, tags)) continue;
      budget.left--;
      sendReplayed(ctx, id, e);
    }
    const last = page.at(-1);
    if (page.length < PAGE || !last) break;
    after = { topic: last.topic, key: last.key as string };
  }
  const compacted = (e: LogEvent): boolean =>
    e.key !== null && pattern.matches(e.topic) && hasTags(e, tags) && retention.forTopic(e.topic).compact;
  for (const [partition, mark] of marks) {
    if (sub.closed) return;
    const until = ctx.tail.position(partition);
    await replayRange(
      ctx,
      id,
      partition,
      mark,
      until,
      budget,
      sub,
      (e) => compacted(e) && !seen.covers(e),
      (e) => seen.add(e),
    );
    sent.set(partition, Math.max(mark, until));
  }
  if (budget.left <= 0 && !sub.closed) ctx.notice(id, 'REPLAY_TRUNCATED', `snapshot stopped after ${maxReplay} events`);
}

/** Sends the events of `partition` in `(after, until]` that `wanted`, within the budget; returns how far it read. */
async function replayRange(
  ctx: SubscriptionContext,
  id: string,
  partition: number,
  after: number,
  until: number,
  budget: { left: number },
  sub: { readonly closed: boolean },
  wanted: (e: LogEvent) => boolean,
  onSent?: (e: LogEvent) => void,
): Promise<number> {
  let cursor = after;
  while (cursor < until && budget.left > 0 && !sub.closed) {
    const events = await ctx.eventLog.read({ partition, afterSeq: cursor, limit: Math.min(PAGE, budget.left), toSeq: until });
    if (events.length === 0) break;
    for (const e of events) {
      if (e.seq > until || sub.closed) break;
      cursor = e.seq;
      if (e.gap || !wanted(e)) continue;
      budget.left--;
      onSent?.(e);
      sendReplayed(ctx, id, e);
    }
    if (events.length < PAGE) break;
  }
  return cursor;
}

/** Sends a replayed event: its `deliver` span starts a new trace linked to the event's. */
function sendReplayed(ctx: SubscriptionContext, id: string, e: LogEvent): void {
  const { json, span } = deliverSpan(e, {}, true, { 'outbox_hub.replay': true });
  ctx.sendEvent(id, e, json, 1);
  span?.end();
}
