import { randomBytes } from 'node:crypto';
import { BSON } from 'mongodb';
import { MAX_TAGS, TAG_PATTERN } from '../protocol/index.js';
import { isTraceContext } from '../tracecontext/index.js';

export { MAX_TAGS, TAG_PATTERN };
import { topicProblem } from '../topic/index.js';
import { OutboxError } from './errors.js';

/** Default number of partitions. */
export const DEFAULT_PARTITIONS = 16;
/** Largest partition count accepted. */
export const MAX_PARTITIONS = 4096;
/** Default payload bound, in BSON bytes. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024;
/** Longest key, in characters. */
export const MAX_KEY_LENGTH = 512;
/** Longest caller-supplied id, in characters. */
export const MAX_ID_LENGTH = 128;
/** Most header entries per message. */
export const MAX_HEADERS = 64;
/** Bound on all header names and values together, in characters. */
export const MAX_HEADERS_CHARS = 16 * 1024;
/**
 * Deepest nesting of objects and arrays in a payload (the payload itself is
 * level 0). Well below the servers' limit (MongoDB: 100 levels per document),
 * which must also fit the documents that wrap a payload (outbox message,
 * event, dead letter).
 */
export const MAX_PAYLOAD_DEPTH = 32;
/** Most events one message may name as its causes (`causedBy`). */
export const MAX_CAUSED_BY = 16;
/** Longest tag, in characters (the grammar is the protocol's {@link TAG_PATTERN}). */
export const MAX_TAG_LENGTH = 64;

const ID_PATTERN = /^[A-Za-z0-9_.:-]+$/;

/** True when `id` is an event id a caller may choose (and so one `causedBy` may name). */
export function isEventId(id: unknown): id is string {
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_ID_LENGTH && ID_PATTERN.test(id);
}
/**
 * A lone UTF-16 surrogate (in `u` mode a pair is one code point, so only unpaired halves
 * match). BSON and JSON carry strings as UTF-8, where a lone surrogate becomes U+FFFD: the
 * string would not come back as it was sent.
 */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** True when `s` is well-formed Unicode (no lone surrogates), so it survives UTF-8 unchanged. */
export function wellFormed(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}

/** What an application hands to {@link Outbox.add}. */
export interface OutboxMessageInput<P = unknown> {
  /** Stable id; becomes the event id. Generated (UUIDv7) when absent. Supply it to make retries idempotent. */
  id?: string;
  topic: string;
  /** Ordering key: messages with the same key are published in order. */
  key?: string | null;
  payload: P;
  headers?: Readonly<Record<string, string>>;
  /** Ids of the events this message was caused by (at most {@link MAX_CAUSED_BY}); ops lists an event's consequences. */
  causedBy?: readonly string[];
  /** Labels subscriptions can filter on (at most {@link MAX_TAGS}, each matching {@link TAG_PATTERN}). */
  tags?: readonly string[];
  /**
   * W3C trace context to carry instead of the caller's active one (the gateway passes its
   * client's). Without it, `add` records its `create` span as a child of the active span
   * and the message carries that span's context. Not part of the message's identity.
   */
  traceparent?: string;
  tracestate?: string;
}

/**
 * Stable 32-bit FNV-1a hash of the UTF-8 bytes of `key`, modulo `partitions`.
 * Other languages reproduce it exactly; it never changes for a given P.
 */
export function partitionOf(key: string, partitions: number): number {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(key)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % partitions;
}

/** Checks that `partitions` is a usable partition count. */
export function assertPartitions(partitions: number): void {
  if (!Number.isSafeInteger(partitions) || partitions < 1 || partitions > MAX_PARTITIONS) {
    throw new OutboxError('INVALID_OPTIONS', `partitions must be a whole number from 1 to ${MAX_PARTITIONS}, got ${partitions}`);
  }
}

/** A UUIDv7 string: millisecond time prefix then random bits, so ids sort roughly by creation. */
export function newMessageId(now = Date.now()): string {
  const b = randomBytes(16);
  b.writeUIntBE(now, 0, 6);
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x70;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function fail(index: number, code: ConstructorParameters<typeof OutboxError>[0], message: string, cause?: unknown): never {
  throw new OutboxError(code, message, { index, cause });
}

/**
 * Why `value` cannot be stored as a payload and delivered unchanged, or
 * undefined when it can. A payload is JSON-like: null, booleans, finite
 * numbers, strings, dense arrays and plain objects, plus Date and ObjectId
 * (stored as BSON dates and ObjectIds; gateway clients receive their JSON
 * forms, an ISO-8601 string and a hex string). Refused, because they would be
 * rejected by the server or change on the way (BSON or JSON): keys starting
 * with `$`, keys containing `.` or NUL, symbol keys, undefined, functions,
 * symbols, BigInt, NaN and ±Infinity, sparse arrays, any other object (Map,
 * Set, RegExp, Buffer, class instances, other BSON types), and nesting deeper
 * than {@link MAX_PAYLOAD_DEPTH}, and strings or keys that are not well-formed
 * Unicode (a lone surrogate). `budget.nodes` bounds the walk (a shared
 * sub-object counts every time it appears, as it would be stored).
 */
function payloadProblem(value: unknown, path: string, depth: number, budget: { nodes: number }): string | undefined {
  if (--budget.nodes < 0) return 'too many values';
  switch (typeof value) {
    case 'string':
      return wellFormed(value) ? undefined : `${path} is not well-formed Unicode (a lone surrogate would come back as U+FFFD)`;
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isFinite(value) ? undefined : `${path} is ${String(value)}, which JSON cannot carry`;
    case 'undefined':
      return `${path} is undefined (use null, or leave the key out)`;
    case 'bigint':
      return `${path} is a BigInt (use a number or a string)`;
    case 'function':
    case 'symbol':
      return `${path} is a ${typeof value}`;
    case 'object':
      break;
  }
  if (value === null) return undefined;
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? `${path} is an invalid Date` : undefined;
  // The driver's own marker, so ObjectIds of any bson copy (or realm) are recognised.
  if ((value as { _bsontype?: unknown })._bsontype === 'ObjectId') return undefined;
  if (depth >= MAX_PAYLOAD_DEPTH) return `${path} nests deeper than ${MAX_PAYLOAD_DEPTH} levels`;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) return `${path}[${i}] is a hole in a sparse array`;
      const problem = payloadProblem(value[i], `${path}[${i}]`, depth + 1, budget);
      if (problem !== undefined) return problem;
    }
    return undefined;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) {
    const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
    return `${path} is ${typeof name === 'string' && name ? `a ${name}` : 'not a plain object'} (only plain objects, arrays, Date and ObjectId)`;
  }
  if (Object.getOwnPropertySymbols(value).length > 0) return `${path} has symbol keys, which would be dropped`;
  for (const [k, v] of Object.entries(value)) {
    const at = `${path}.${k}`;
    if (k.startsWith('$')) return `key ${JSON.stringify(at)} starts with $`;
    if (k.includes('.')) return `key ${JSON.stringify(at)} contains a dot`;
    if (k.includes('\0')) return `key ${JSON.stringify(at)} contains NUL`;
    if (!wellFormed(k)) return `key ${JSON.stringify(at)} is not well-formed Unicode`;
    const problem = payloadProblem(v, at, depth + 1, budget);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

/** Validated, normalised message fields (everything but status and timing). */
export interface ValidMessage {
  id: string;
  topic: string;
  key: string | null;
  payload: unknown;
  headers: Record<string, string>;
  /** Absent when empty, so messages without causes or tags store (and digest) as before. */
  causedBy?: string[];
  tags?: string[];
  traceparent?: string;
  tracestate?: string;
}

/** A list field of up to `max` distinct strings that each pass `valid`, or a problem. */
function listProblem(value: unknown, max: number, valid: (s: unknown) => boolean, what: string): string | undefined {
  if (!Array.isArray(value)) return `${what} must be an array of strings`;
  if (value.length > max) return `${what} has ${value.length} entries; at most ${max}`;
  const seen = new Set<unknown>();
  for (const v of value as unknown[]) {
    if (!valid(v)) return `${what} entry ${JSON.stringify(v)} is not valid`;
    if (seen.has(v)) return `${what} names ${JSON.stringify(v)} twice`;
    seen.add(v);
  }
  return undefined;
}

/** Validates one input; throws an {@link OutboxError} naming the field and the batch `index`. */
export function validateMessage(input: unknown, index: number, maxPayloadBytes: number, now: number): ValidMessage {
  if (typeof input !== 'object' || input === null) fail(index, 'INVALID_PAYLOAD', 'message must be an object');
  const m = input as Partial<OutboxMessageInput>;
  const problem = topicProblem(m.topic);
  if (problem !== undefined) fail(index, 'INVALID_TOPIC', problem);

  let id: string;
  if (m.id === undefined) id = newMessageId(now);
  else if (typeof m.id !== 'string' || m.id.length === 0 || m.id.length > MAX_ID_LENGTH || !ID_PATTERN.test(m.id)) {
    fail(index, 'INVALID_ID', `id must be 1-${MAX_ID_LENGTH} characters of [A-Za-z0-9_.:-]`);
  } else id = m.id;

  const key = m.key ?? null;
  if (key !== null && (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH || !wellFormed(key))) {
    fail(index, 'INVALID_KEY', `key must be a non-empty, well-formed Unicode string of at most ${MAX_KEY_LENGTH} characters`);
  }

  const headers: Record<string, string> = {};
  if (m.headers !== undefined) {
    if (typeof m.headers !== 'object' || m.headers === null || Array.isArray(m.headers)) {
      fail(index, 'INVALID_HEADERS', 'headers must be an object of strings');
    }
    const entries = Object.entries(m.headers);
    if (entries.length > MAX_HEADERS) fail(index, 'INVALID_HEADERS', `at most ${MAX_HEADERS} headers`);
    let chars = 0;
    for (const [k, v] of entries) {
      // __proto__ would set the prototype of the headers object instead of adding a header.
      if (typeof v !== 'string' || k.length === 0 || k.startsWith('$') || k.includes('.') || k.includes('\0') || k === '__proto__') {
        fail(index, 'INVALID_HEADERS', `header ${JSON.stringify(k)} must have a plain name and a string value`);
      }
      if (!wellFormed(k) || !wellFormed(v)) fail(index, 'INVALID_HEADERS', `header ${JSON.stringify(k)} is not well-formed Unicode`);
      chars += k.length + v.length;
      headers[k] = v;
    }
    if (chars > MAX_HEADERS_CHARS) fail(index, 'INVALID_HEADERS', `headers exceed ${MAX_HEADERS_CHARS} characters`);
  }

  if (m.payload === undefined) fail(index, 'INVALID_PAYLOAD', 'payload is required');
  // Each stored value takes at least two BSON bytes, so a walk beyond this many values is over the size bound.
  const budget = { nodes: Math.ceil(maxPayloadBytes / 2) + 1 };
  const shape = payloadProblem(m.payload, 'payload', 0, budget);
  if (budget.nodes < 0) fail(index, 'PAYLOAD_TOO_LARGE', `payload has more values than fit in ${maxPayloadBytes} bytes`);
  if (shape !== undefined) fail(index, 'INVALID_PAYLOAD', `payload cannot be stored and delivered unchanged: ${shape}`);
  let size: number;
  try {
    size = BSON.calculateObjectSize({ p: m.payload });
  } catch (err) {
    fail(index, 'INVALID_PAYLOAD', `payload cannot be serialised: ${(err as Error).message}`, err);
  }
  if (size > maxPayloadBytes) fail(index, 'PAYLOAD_TOO_LARGE', `payload is ${size} bytes, the limit is ${maxPayloadBytes}`);

  const extra: Pick<ValidMessage, 'causedBy' | 'tags' | 'traceparent' | 'tracestate'> = {};
  if (m.causedBy !== undefined) {
    const problem = listProblem(m.causedBy, MAX_CAUSED_BY, isEventId, 'causedBy');
    if (problem) fail(index, 'INVALID_CAUSED_BY', `${problem} (event ids: 1-${MAX_ID_LENGTH} characters of [A-Za-z0-9_.:-])`);
    if (m.causedBy.length > 0) extra.causedBy = [...m.causedBy];
  }
  if (m.tags !== undefined) {
    const problem = listProblem(m.tags, MAX_TAGS, (t) => typeof t === 'string' && TAG_PATTERN.test(t), 'tags');
    if (problem) fail(index, 'INVALID_TAGS', `${problem} (tags: 1-${MAX_TAG_LENGTH} characters of [A-Za-z0-9_.:=/-])`);
    if (m.tags.length > 0) extra.tags = [...m.tags];
  }
  if (m.traceparent !== undefined || m.tracestate !== undefined) {
    if (typeof m.traceparent !== 'string' || !isTraceContext({ traceparent: m.traceparent, tracestate: m.tracestate })) {
      fail(
        index,
        'INVALID_TRACE_CONTEXT',
        'traceparent must be a W3C traceparent (00-<trace id>-<span id>-<flags>), tracestate at most 512 characters',
      );
    }
    extra.traceparent = m.traceparent;
    if (m.tracestate !== undefined) extra.tracestate = m.tracestate;
  }

  return { id, topic: m.topic as string, key, payload: m.payload, headers, ...extra };
}
