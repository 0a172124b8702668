import { parseDuration } from '../config/index.js';
import { TopicPattern } from '../topic/index.js';
import { RetentionError } from './errors.js';

/** How long the events of some topics are kept. Every bound is optional; none keeps events for ever. */
export interface RetentionPolicy {
  /** The policy's topics (`*`/`**` patterns as in ACLs); undefined for the default. */
  readonly match: TopicPattern | undefined;
  /** An event older than this (since it was published) may be trimmed. */
  readonly maxAgeMs: number | undefined;
  /** An event with this many newer events in its partition may be trimmed. */
  readonly maxEvents: number | undefined;
  /**
   * Compacted: the latest event of every key is kept in the snapshot whatever its age,
   * so the log itself may trim them all; a `null` payload (tombstone) removes the key
   * once it is the policies' `tombstoneGrace` old.
   */
  readonly compact: boolean;
  /**
   * Interest retention: an event some registered consumer group of its topic has not
   * settled yet is kept, up to the hard caps below (past them it is trimmed anyway and the
   * group is told).
   */
  readonly keepForGroups: boolean;
  readonly hardMaxAgeMs: number | undefined;
  readonly hardMaxEvents: number | undefined;
}

/** Most topic policies one deployment may configure (each is checked per topic, memoised). */
export const MAX_POLICIES = 100;
/** Most distinct topics whose policy is remembered. */
const TOPIC_CACHE = 10_000;

const KEEP_FOREVER: RetentionPolicy = Object.freeze({
  match: undefined,
  maxAgeMs: undefined,
  maxEvents: undefined,
  compact: false,
  keepForGroups: false,
  hardMaxAgeMs: undefined,
  hardMaxEvents: undefined,
});

const FIELDS = new Set(['match', 'maxAge', 'maxEvents', 'compact', 'keepForGroups', 'hardMaxAge', 'hardMaxEvents']);
/** Default age at which a tombstone leaves the snapshot. */
const TOMBSTONE_GRACE_MS = 3_600_000;
/**
 * Default share of a drainer's time its retention work may keep the database busy. Trimming
 * is background work: a fifth of the time still trims a 1,000,000-event backlog in minutes,
 * and appends seldom wait behind a delete (measured in bench/retention.ts).
 */
const DUTY_CYCLE = 0.2;

/**
 * The deployment's retention policies: topic policies in order (the first whose
 * pattern matches a topic wins) and a default for every other topic. Without any
 * configuration every event is kept for ever, as before retention existed.
 *
 * The text is JSON: `{"default": {...}, "topics": [{"match": "orders.**", ...}, ...],
 * "tombstoneGrace": "1h", "dutyCycle": 0.2}` with `maxAge`, `hardMaxAge` and `tombstoneGrace` as durations
 * (`30d`, `12h`, `90s`), `maxEvents`, `hardMaxEvents` as counts, `compact` and `keepForGroups` as
 * booleans, and `dutyCycle` the share of time (above 0, at most 1) retention's database work may take.
 */
export class RetentionPolicies {
  readonly default: RetentionPolicy;
  readonly topics: readonly RetentionPolicy[];
  /** How long a tombstone (a null payload on a compacted topic) stays in the snapshot before the key goes. */
  readonly tombstoneGraceMs: number;
  /**
   * Share of time a drainer's retention rounds may keep the database busy: after each of
   * their calls they wait long enough that calls take at most this share (1: no waiting).
   */
  readonly dutyCycle: number;
  readonly #cache = new Map<string, RetentionPolicy>();

  private constructor(fallback: RetentionPolicy, topics: RetentionPolicy[], tombstoneGraceMs: number, dutyCycle: number) {
    this.default = fallback;
    this.topics = topics;
    this.tombstoneGraceMs = tombstoneGraceMs;
    this.dutyCycle = dutyCycle;
  }

  /** No policies: every event is kept. */
  static keepAll(): RetentionPolicies {
    return new RetentionPolicies(KEEP_FOREVER, [], TOMBSTONE_GRACE_MS, DUTY_CYCLE);
  }

  /** Parses and validates `text` (from `source`, named in errors); throws `INVALID_POLICY` saying what is wrong where. */
  static parse(text: string, source: string): RetentionPolicies {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new RetentionError('INVALID_POLICY', `${source} is not valid JSON: ${(err as Error).message}`, { cause: err });
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
      throw new RetentionError('INVALID_POLICY', `${source} must be an object with "default" and/or "topics"`);
    const o = raw as Record<string, unknown>;
    for (const k of Object.keys(o))
      if (k !== 'default' && k !== 'topics' && k !== 'tombstoneGrace' && k !== 'dutyCycle')
        throw new RetentionError('INVALID_POLICY', `${source}: unknown field ${JSON.stringify(k)}`);
    const grace = o['tombstoneGrace'];
    const graceMs = grace === undefined ? TOMBSTONE_GRACE_MS : typeof grace === 'string' ? parseDuration(grace) : Number.NaN;
    if (!Number.isFinite(graceMs) || graceMs < 1_000)
      throw new RetentionError(
        'INVALID_POLICY',
        `${source}.tombstoneGrace must be a duration of at least 1s like 1h, got ${JSON.stringify(grace)}`,
      );
    const duty = o['dutyCycle'] ?? DUTY_CYCLE;
    if (typeof duty !== 'number' || !(duty > 0 && duty <= 1))
      throw new RetentionError(
        'INVALID_POLICY',
        `${source}.dutyCycle must be a number above 0 and at most 1 (the share of time), got ${JSON.stringify(duty)}`,
      );
    const fallback = o['default'] === undefined ? KEEP_FOREVER : policy(o['default'], `${source}.default`, false);
    const list = o['topics'] ?? [];
    if (!Array.isArray(list)) throw new RetentionError('INVALID_POLICY', `${source}.topics must be an array`);
    if (list.length > MAX_POLICIES) throw new RetentionError('INVALID_POLICY', `${source}.topics: at most ${MAX_POLICIES} policies`);
    return new RetentionPolicies(
      fallback,
      list.map((p: unknown, i) => policy(p, `${source}.topics[${i}]`, true)),
      graceMs,
      duty,
    );
  }

  /** The policy of `topic`: the first topic policy that matches it, else the default. */
  forTopic(topic: string): RetentionPolicy {
    let p = this.#cache.get(topic);
    if (p === undefined) {
      p = this.topics.find((t) => t.match?.matches(topic)) ?? this.default;
      // Topics are few in practice; a flood of distinct ones only costs re-matching.
      if (this.#cache.size >= TOPIC_CACHE) this.#cache.clear();
      this.#cache.set(topic, p);
    }
    return p;
  }

  /** Whether any policy can trim or compact (without any, retention does nothing at all). */
  get active(): boolean {
    return [this.default, ...this.topics].some((p) => p.compact || p.maxAgeMs !== undefined || p.maxEvents !== undefined);
  }

  /** Whether any topic is compacted (the drainer then keeps the latest-value snapshot). */
  get compacts(): boolean {
    return [this.default, ...this.topics].some((p) => p.compact);
  }

  /** The policies as configuration (durations in ms), for logs and ops. */
  describe(): Record<string, unknown> {
    const d = (p: RetentionPolicy): Record<string, unknown> => ({
      ...(p.match ? { match: p.match.source } : {}),
      ...(p.maxAgeMs === undefined ? {} : { maxAgeMs: p.maxAgeMs }),
      ...(p.maxEvents === undefined ? {} : { maxEvents: p.maxEvents }),
      ...(p.compact ? { compact: true } : {}),
      ...(p.keepForGroups ? { keepForGroups: true } : {}),
      ...(p.hardMaxAgeMs === undefined ? {} : { hardMaxAgeMs: p.hardMaxAgeMs }),
      ...(p.hardMaxEvents === undefined ? {} : { hardMaxEvents: p.hardMaxEvents }),
    });
    return { default: d(this.default), topics: this.topics.map(d), tombstoneGraceMs: this.tombstoneGraceMs, dutyCycle: this.dutyCycle };
  }
}

function policy(value: unknown, where: string, topic: boolean): RetentionPolicy {
  const fail = (problem: string): never => {
    throw new RetentionError('INVALID_POLICY', `${where}: ${problem}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail('must be an object');
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!FIELDS.has(k) || (!topic && k === 'match')) fail(`unknown field ${JSON.stringify(k)}`);
  let match: TopicPattern | undefined;
  if (topic) {
    try {
      match = TopicPattern.compile(o['match']);
    } catch (err) {
      fail(`"match" must be a topic pattern: ${(err as Error).message}`);
    }
  }
  const duration = (k: string): number | undefined => {
    const v = o[k];
    if (v === undefined) return undefined;
    const ms = typeof v === 'string' ? parseDuration(v) : Number.NaN;
    if (!Number.isFinite(ms) || ms < 1_000) fail(`"${k}" must be a duration of at least 1s like 30d, 12h or 90s, got ${JSON.stringify(v)}`);
    return ms;
  };
  const count = (k: string): number | undefined => {
    const v = o[k];
    if (v === undefined) return undefined;
    if (!Number.isSafeInteger(v) || (v as number) < 1) fail(`"${k}" must be a whole number of at least 1, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const flag = (k: string): boolean => {
    const v = o[k] ?? false;
    if (typeof v !== 'boolean') fail(`"${k}" must be true or false`);
    return v as boolean;
  };
  const p: RetentionPolicy = {
    match,
    maxAgeMs: duration('maxAge'),
    maxEvents: count('maxEvents'),
    compact: flag('compact'),
    keepForGroups: flag('keepForGroups'),
    hardMaxAgeMs: duration('hardMaxAge'),
    hardMaxEvents: count('hardMaxEvents'),
  };
  if (p.compact && (p.maxAgeMs !== undefined || p.maxEvents !== undefined))
    fail('a compacted policy keeps the latest event of every key: it takes no maxAge or maxEvents');
  if (!p.keepForGroups && (p.hardMaxAgeMs !== undefined || p.hardMaxEvents !== undefined))
    fail('hardMaxAge and hardMaxEvents cap keepForGroups: set keepForGroups: true or leave them out');
  if (p.keepForGroups && p.maxAgeMs === undefined && p.maxEvents === undefined)
    fail('keepForGroups needs maxAge or maxEvents to hold back');
  if (p.hardMaxAgeMs !== undefined && p.maxAgeMs !== undefined && p.hardMaxAgeMs < p.maxAgeMs) fail('hardMaxAge must not be below maxAge');
  if (p.hardMaxEvents !== undefined && p.maxEvents !== undefined && p.hardMaxEvents < p.maxEvents)
    fail('hardMaxEvents must not be below maxEvents');
  return Object.freeze(p);
}
