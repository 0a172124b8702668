import { describeError } from '../errors/index.js';
import type { EventReader, LogEvent } from '../eventlog/index.js';
import type { GroupManager, GroupMember, GroupMembership } from '../groups/index.js';
import type { Logger } from '../log/index.js';
import { CloseCode, type ErrorCode, type StartFrom } from '../protocol/index.js';
import type { TopicPattern } from '../topic/index.js';
import type { GatewayConfig } from './config.js';
import { toWire, type LiveHub, type LiveSubscription } from './hub.js';
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
  readonly config: Pick<GatewayConfig, 'maxInFlight' | 'maxReplay' | 'partitions'>;
  readonly eventLog: Pick<EventReader, 'read'>;
  readonly tail: Pick<LogTail, 'position'>;
  readonly hub: LiveHub;
  readonly groups: GroupManager;
  readonly log: Logger;
  /** Sends an EVENT frame; false when the connection can no longer receive. */
  sendEvent(sub: string, event: LogEvent, json: string, delivery: number): boolean;
  /** Sends a notice about subscription `sub` (an ERR with no request id). */
  notice(sub: string, code: ErrorCode, message: string): void;
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
): Promise<Subscription> {
  const member: GroupMember = {
    id: `${ctx.connectionId}/${id}`,
    maxInFlight: Math.min(maxInFlight ?? ctx.config.maxInFlight, ctx.config.maxInFlight),
    send: (event, delivery) => ctx.sendEvent(id, event, JSON.stringify(toWire(event)), delivery),
  };
  const membership = await ctx.groups.join(group, pattern, member, from);
  return { id, pattern, group: { name: group, membership }, start: () => membership.activate(), close: () => membership.leave() };
}

/**
 * A live subscription: from now, or a replay from `from` followed by the live
 * tail (events arriving during the replay are held, up to MAX_REPLAY, and sent
 * after it unless the replay already covered them).
 */
export function liveSubscription(ctx: SubscriptionContext, id: string, pattern: TopicPattern, from: StartFrom): Subscription {
  const hub = ctx.hub;
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
        if (held.length >= ctx.config.maxReplay) ctx.close(CloseCode.SLOW_CONSUMER, 'too many events arrived during replay');
        else held.push([event, json]);
        return;
      }
      ctx.sendEvent(id, event, json, 1);
    },
  };
  hub.add(live);
  const start = (): void => {
    if (!replaying) return;
    void replay(ctx, id, pattern, from, sent, state)
      .catch((err: unknown) => {
        if (state.closed) return;
        ctx.log.warn('replay failed', { sub: id, err: describeError(err) });
        ctx.notice(id, 'UNAVAILABLE', 'replay failed; resubscribe to retry');
      })
      .finally(() => {
        if (!state.closed)
          for (const [event, json] of held) if (event.seq > (sent.get(event.partition) ?? 0)) ctx.sendEvent(id, event, json, 1);
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
async function replay(
  ctx: SubscriptionContext,
  id: string,
  pattern: TopicPattern,
  from: StartFrom,
  sent: Map<number, number>,
  sub: { readonly closed: boolean },
): Promise<void> {
  const { eventLog, tail, config } = ctx;
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
        ctx.sendEvent(id, e, JSON.stringify(toWire(e)), 1);
      }
      if (events.length < 500) break;
    }
    sent.set(partition, Math.max(cursor, until));
  }
  if (budget <= 0 && !sub.closed) ctx.notice(id, 'REPLAY_TRUNCATED', `replay stopped after ${config.maxReplay} events`);
}
