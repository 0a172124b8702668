/**
 * Wire protocol v1 of the gateway (see PROTOCOL.md beside this file): frame
 * types, error and close codes, and the frame parser. Pure and dependency-free:
 * shared by the gateway and the client SDK (browser included).
 *
 * Invariant: every client request has an `id`; the server answers it with
 * exactly one `OK` or `ERR` echoing that `id`.
 */

/** WebSocket subprotocol naming this version. */
export const PROTOCOL = 'outbox-hub.v1';

/** Close codes, one per reason. */
export const CloseCode = Object.freeze({
  SHUTTING_DOWN: 1001,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_LARGE: 1009,
  AUTH_FAILED: 4001,
  TOKEN_EXPIRED: 4002,
  AUTH_TIMEOUT: 4003,
  SLOW_CONSUMER: 4008,
  RATE_LIMITED: 4029,
});

/** Stable `ERR` codes. */
export type ErrorCode =
  | 'BAD_FRAME'
  | 'UNKNOWN_OP'
  | 'NOT_AUTHENTICATED'
  | 'AUTH_FAILED'
  | 'FORBIDDEN'
  | 'INVALID_TOPIC'
  | 'INVALID_PATTERN'
  | 'INVALID_PAYLOAD'
  | 'PAYLOAD_TOO_LARGE'
  | 'DUPLICATE_ID'
  | 'TOO_MANY_SUBSCRIPTIONS'
  | 'SUBSCRIPTION_EXISTS'
  | 'NO_SUCH_SUBSCRIPTION'
  | 'NO_SUCH_DELIVERY'
  | 'GROUP_MISMATCH'
  | 'RATE_LIMITED'
  | 'SUBSCRIPTION_REVOKED'
  | 'REPLAY_TRUNCATED'
  | 'TRIMMED'
  | 'UNAVAILABLE'
  | 'INTERNAL';

/**
 * Where a subscription starts: now, the earliest retained event, after a sequence per
 * partition, or (live subscriptions only) `snapshot`: the latest event of every key of
 * the filter's compacted topics, then the live tail.
 */
export type StartFrom = 'now' | 'earliest' | 'snapshot' | Readonly<Record<string, number>>;

/** Most tags a message carries, and a `SUBSCRIBE` may ask for. */
export const MAX_TAGS = 16;
/** A tag: 1-64 characters of `[A-Za-z0-9_.:=/-]` (so `tenant=acme` and `eu/west` work). */
export const TAG_PATTERN = /^[A-Za-z0-9_.:=/-]{1,64}$/;

/** What a `PUBLISH` may carry besides the message: causes, tags and the publisher's W3C trace context. */
export interface PublishExtras {
  /** Ids of the events this one was caused by. */
  causedBy?: string[];
  tags?: string[];
  /** W3C trace context of the publisher's span (one that does not parse is ignored). */
  traceparent?: string;
  tracestate?: string;
}

/** A request from a client. */
export type ClientFrame =
  | { op: 'AUTH'; id: string; token: string }
  | ({
      op: 'PUBLISH';
      id: string;
      topic: string;
      key?: string;
      payload: unknown;
      headers?: Record<string, string>;
      eventId?: string;
    } & PublishExtras)
  | {
      op: 'SUBSCRIBE';
      id: string;
      sub: string;
      topic: string;
      group?: string;
      from?: StartFrom;
      maxInFlight?: number;
      /** Only events carrying every one of these tags (for a group: part of its definition, like its filter). */
      tags?: string[];
    }
  | { op: 'UNSUBSCRIBE'; id: string; sub: string }
  | { op: 'ACK'; id: string; sub: string; eventId: string }
  | { op: 'NACK'; id: string; sub: string; eventId: string; delayMs?: number }
  | { op: 'PING'; id: string };

/** Every client op. */
export const CLIENT_OPS = ['AUTH', 'PUBLISH', 'SUBSCRIBE', 'UNSUBSCRIBE', 'ACK', 'NACK', 'PING'] as const;

/** An event as delivered to clients. */
export interface WireEvent {
  id: string;
  topic: string;
  key: string | null;
  partition: number;
  seq: number;
  payload: unknown;
  headers: Record<string, string>;
  createdAt: string;
  publishedAt: string;
  /** Present when the event names its causes. */
  causedBy?: string[];
  /** Present when the event has tags. */
  tags?: string[];
  /**
   * W3C trace context to continue from: the gateway's `deliver` span where the gateway
   * traces, else the one the event was stored with. Absent when the event carries none.
   */
  traceparent?: string;
  tracestate?: string;
}

/** A frame the server sends. */
export type ServerFrame =
  | ({ op: 'OK'; id: string } & Record<string, unknown>)
  | { op: 'ERR'; id: string | null; code: ErrorCode; message: string; sub?: string; partition?: number; firstSeq?: number }
  | { op: 'EVENT'; sub: string; event: WireEvent; delivery: number };

/** A frame that could not be parsed: the reply names the request id when one was readable. */
export interface FrameProblem {
  id: string | null;
  code: ErrorCode;
  message: string;
}

const ID = /^[A-Za-z0-9_.:-]{1,64}$/;
const SUB = /^[A-Za-z0-9_.:-]{1,64}$/;
/** A consumer group name (also what token policies name in `groups`). */
export const GROUP_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX_DELAY_MS = 3_600_000;

function str(v: unknown): v is string {
  return typeof v === 'string';
}

function strings(v: unknown): v is string[] {
  return Array.isArray(v) && v.every(str);
}

/** Parses and shape-checks one text frame. Semantics (ACL, topic grammar) are checked later. */
export function parseClientFrame(text: string): ClientFrame | FrameProblem {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { id: null, code: 'BAD_FRAME', message: 'frame is not valid JSON' };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    return { id: null, code: 'BAD_FRAME', message: 'frame must be a JSON object' };
  const f = raw as Record<string, unknown>;
  const id = str(f['id']) && ID.test(f['id']) ? f['id'] : null;
  const bad = (message: string): FrameProblem => ({ id, code: 'BAD_FRAME', message });
  if (id === null) return bad('id must be 1-64 characters of [A-Za-z0-9_.:-]');
  const op = f['op'];
  if (!str(op) || !(CLIENT_OPS as readonly string[]).includes(op))
    return { id, code: 'UNKNOWN_OP', message: `unknown op ${JSON.stringify(op)}` };
  const sub = f['sub'];
  const needSub = (): string | FrameProblem => (str(sub) && SUB.test(sub) ? sub : bad('sub must be 1-64 characters of [A-Za-z0-9_.:-]'));
  switch (op) {
    case 'AUTH':
      return str(f['token']) ? { op, id, token: f['token'] } : bad('token must be a string');
    case 'PING':
      return { op, id };
    case 'PUBLISH': {
      if (!str(f['topic'])) return bad('topic must be a string');
      if (!('payload' in f)) return { id, code: 'INVALID_PAYLOAD', message: 'payload is required' };
      if (f['key'] !== undefined && f['key'] !== null && !str(f['key'])) return bad('key must be a string');
      if (f['eventId'] !== undefined && !str(f['eventId'])) return bad('eventId must be a string');
      const headers = f['headers'];
      if (headers !== undefined && (typeof headers !== 'object' || headers === null || Array.isArray(headers)))
        return bad('headers must be an object');
      // Shapes only: the outbox validates causes and tags with the rest of the message.
      const extras: PublishExtras = {};
      for (const k of ['causedBy', 'tags'] as const) {
        const v = f[k];
        if (v === undefined) continue;
        if (!strings(v)) return { id, code: 'INVALID_PAYLOAD', message: `${k} must be an array of strings` };
        extras[k] = v;
      }
      if (str(f['traceparent'])) extras.traceparent = f['traceparent'];
      if (str(f['tracestate'])) extras.tracestate = f['tracestate'];
      return {
        ...extras,
        op,
        id,
        topic: f['topic'],
        payload: f['payload'],
        ...(str(f['key']) ? { key: f['key'] } : {}),
        ...(headers === undefined ? {} : { headers: headers as Record<string, string> }),
        ...(str(f['eventId']) ? { eventId: f['eventId'] } : {}),
      };
    }
    case 'SUBSCRIBE': {
      const s = needSub();
      if (typeof s !== 'string') return s;
      if (!str(f['topic'])) return bad('topic must be a string');
      const group = f['group'];
      if (group !== undefined && !(str(group) && GROUP_NAME.test(group))) return bad('group must be 1-64 characters of [A-Za-z0-9_.-]');
      const from = f['from'];
      if (from === 'snapshot' && group !== undefined) return bad("from 'snapshot' is for live subscriptions, not groups");
      if (from !== undefined && from !== 'now' && from !== 'earliest' && from !== 'snapshot') {
        if (typeof from !== 'object' || from === null || Array.isArray(from))
          return bad("from must be 'now', 'earliest', 'snapshot' or { partition: seq }");
        for (const [p, seq] of Object.entries(from)) {
          if (!/^\d{1,4}$/.test(p) || !Number.isSafeInteger(seq) || (seq as number) < 0)
            return bad('from must map partition numbers to non-negative sequences');
        }
      }
      const mif = f['maxInFlight'];
      if (mif !== undefined && !(Number.isSafeInteger(mif) && (mif as number) >= 1 && (mif as number) <= 10_000))
        return bad('maxInFlight must be 1-10000');
      const tags = f['tags'];
      if (tags !== undefined) {
        if (!strings(tags) || tags.length === 0 || tags.length > MAX_TAGS || !tags.every((t) => TAG_PATTERN.test(t)))
          return bad(`tags must be 1-${MAX_TAGS} tags of 1-64 characters of [A-Za-z0-9_.:=/-]`);
      }
      return {
        ...(tags === undefined ? {} : { tags: [...new Set(tags)] }),
        op,
        id,
        sub: s,
        topic: f['topic'],
        ...(group === undefined ? {} : { group }),
        ...(from === undefined ? {} : { from: from as StartFrom }),
        ...(mif === undefined ? {} : { maxInFlight: mif as number }),
      };
    }
    case 'UNSUBSCRIBE': {
      const s = needSub();
      return typeof s === 'string' ? { op, id, sub: s } : s;
    }
    case 'ACK':
    case 'NACK': {
      const s = needSub();
      if (typeof s !== 'string') return s;
      if (!str(f['eventId'])) return bad('eventId must be a string');
      if (op === 'ACK') return { op, id, sub: s, eventId: f['eventId'] };
      const delay = f['delayMs'];
      if (delay !== undefined && !(Number.isSafeInteger(delay) && (delay as number) >= 0 && (delay as number) <= MAX_DELAY_MS)) {
        return bad(`delayMs must be 0-${MAX_DELAY_MS}`);
      }
      return { op, id, sub: s, eventId: f['eventId'], ...(delay === undefined ? {} : { delayMs: delay as number }) };
    }
    default:
      return { id, code: 'UNKNOWN_OP', message: `unknown op ${JSON.stringify(op)}` };
  }
}
