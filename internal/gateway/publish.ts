import { isHubError } from '../errors/index.js';
import type { Outbox } from '../outbox/index.js';
import type { ClientFrame, ErrorCode } from '../protocol/index.js';
import {
  ROOT_CONTEXT,
  SpanStatusCode,
  failSpan,
  formatTraceContext,
  parseTraceContext,
  startMessageSpan,
  traceFields,
  type TraceContext,
} from '../tracecontext/index.js';
import { GatewayError } from './errors.js';

/** Whether the database answers its probe, and the moment it stops. */
export interface DatabaseState {
  up(): boolean;
  /** Calls `listener` when the database is found down; returns its removal. */
  onDown(listener: () => void): () => void;
}

/** A PUBLISH as the use case gets it: the frame, and the subject it is published for. */
export type PublishFrame = Extract<ClientFrame, { op: 'PUBLISH' }>;

/** What a publish came to: acknowledged (maybe as a duplicate of the same message), or refused with whether a retry may help. */
export type PublishResult =
  | { readonly ok: true; readonly eventId: string; readonly partition: number; readonly duplicate: boolean }
  | { readonly ok: false; readonly code: ErrorCode; readonly message: string; readonly retryable: boolean };

/** Outbox refusals as protocol errors (the rest are storage failures: UNAVAILABLE when retryable). */
const REFUSALS: ReadonlyMap<string, ErrorCode> = new Map<string, ErrorCode>([
  ['INVALID_TOPIC', 'INVALID_TOPIC'],
  ['PAYLOAD_TOO_LARGE', 'PAYLOAD_TOO_LARGE'],
  ['INVALID_PAYLOAD', 'INVALID_PAYLOAD'],
  ['INVALID_KEY', 'INVALID_PAYLOAD'],
  ['INVALID_HEADERS', 'INVALID_PAYLOAD'],
  ['INVALID_ID', 'INVALID_PAYLOAD'],
  ['INVALID_CAUSED_BY', 'INVALID_PAYLOAD'],
  ['INVALID_TAGS', 'INVALID_PAYLOAD'],
  ['INVALID_TRACE_CONTEXT', 'INVALID_PAYLOAD'],
  ['DUPLICATE_ID', 'DUPLICATE_ID'],
]);

/**
 * The gateway's publish use case: a PUBLISH becomes an outbox message, durable
 * before it is acknowledged, within a deadline. Permission and rate checks are
 * the connection's; whether a failure can be retried is the outbox's decision
 * (its errors carry it), never guessed here.
 */
export class PublishUseCase {
  readonly #outbox: Pick<Outbox, 'add'>;
  readonly #timeoutMs: number;
  readonly #database: DatabaseState | undefined;

  constructor(deps: { outbox: Pick<Outbox, 'add'>; timeoutMs: number; database?: DatabaseState }) {
    this.#outbox = deps.outbox;
    this.#timeoutMs = deps.timeoutMs;
    this.#database = deps.database;
  }

  /**
   * Publishes `f` for `subject` in a `publish` span, a child of the client's trace context
   * (one that does not parse is ignored, as W3C asks); the message carries the span's context
   * on, or the client's as it is where this process does not trace.
   */
  async publish(f: PublishFrame, subject: string): Promise<PublishResult> {
    const client: TraceContext | undefined =
      f.traceparent !== undefined && parseTraceContext(f) !== undefined
        ? { traceparent: f.traceparent, ...(f.tracestate === undefined ? {} : { tracestate: f.tracestate }) }
        : undefined;
    const span = startMessageSpan('publish', { topic: f.topic, ...(f.eventId === undefined ? {} : { id: f.eventId }) }, client, {
      parent: ROOT_CONTEXT,
    });
    let result: PublishResult;
    try {
      result = await this.#publish(f, subject, formatTraceContext(span.spanContext()) ?? client);
    } catch (err) {
      failSpan(span, err);
      throw err;
    }
    if (result.ok) {
      span.setAttributes({
        'messaging.message.id': result.eventId,
        'messaging.destination.partition.id': String(result.partition),
        'outbox_hub.duplicate': result.duplicate,
      });
    } else span.setStatus({ code: SpanStatusCode.ERROR, message: `${result.code}: ${result.message}` });
    span.end();
    return result;
  }

  async #publish(f: PublishFrame, subject: string, trace: TraceContext | undefined): Promise<PublishResult> {
    // Known down: say so at once instead of making the client wait for a timeout.
    if (this.#database?.up() === false) return refused('UNAVAILABLE', 'the database is unreachable; retry', true);
    try {
      const receipt = await withDeadline(
        this.#outbox.add(
          {
            topic: f.topic,
            payload: f.payload,
            ...(f.key === undefined ? {} : { key: f.key }),
            ...(f.headers === undefined ? {} : { headers: f.headers }),
            ...(f.eventId === undefined ? {} : { id: f.eventId }),
            ...(f.causedBy === undefined ? {} : { causedBy: f.causedBy }),
            ...(f.tags === undefined ? {} : { tags: f.tags }),
            ...traceFields(trace),
          },
          // A retried publish (same eventId, same message, same subject) is answered as a
          // duplicate; the same eventId for anything else is refused by the outbox.
          { idempotent: true, publisher: subject },
        ),
        this.#timeoutMs,
        this.#database,
      );
      return { ok: true, eventId: receipt.id, partition: receipt.partition, duplicate: receipt.duplicate === true };
    } catch (err) {
      if (err instanceof DeadlineError) return refused('UNAVAILABLE', err.message, true);
      if (!isHubError(err)) throw err;
      const code = REFUSALS.get(err.code);
      if (code === 'DUPLICATE_ID') return refused(code, 'eventId already used for a different message', false);
      if (code) return refused(code, err.message, false);
      if (err.retryable) return refused('UNAVAILABLE', 'the publish could not be completed; retry with the same eventId', true);
      return refused('INTERNAL', 'the publish failed; retrying it unchanged will not help', false);
    }
  }
}

function refused(code: ErrorCode, message: string, retryable: boolean): PublishResult {
  return { ok: false, code, message, retryable };
}

/** The publish took longer than the deadline: it may still land (a retry with its id is safe). */
class DeadlineError extends GatewayError {
  constructor(why: string) {
    super('UNAVAILABLE', `${why}; it may still land: retry with the same eventId`, { retryable: true });
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
