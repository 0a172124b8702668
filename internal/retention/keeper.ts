import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EventLogRetention, EventMeta, EventReader, LogEvent } from '../eventlog/index.js';
import type { Logger } from '../log/index.js';
import type { Counter, Gauge } from '../telemetry/index.js';
import type { TopicPattern } from '../topic/index.js';
import type { RetentionPolicies } from './policy.js';

/** What the keeper works through: the log's retention role, plus heads and reads for compaction. */
export type RetentionLog = EventLogRetention & Pick<EventReader, 'head' | 'read'>;

/**
 * A registered consumer group as interest retention sees it: its filter, its tags and its
 * cursor per partition. An event past the cursor is held for the group only if the group
 * wants it (its filter matches, and it carries every one of the group's tags). A group with
 * tags that nobody serves thus holds no events without its tags; on its return it is told
 * TRIMMED only if an event with tags was trimmed past its cursor (the log records the highest
 * such sequence, `taggedTo`), and otherwise goes on without a notice for events it never wanted.
 */
export interface GroupInterest {
  readonly name: string;
  readonly filter: TopicPattern;
  /** The acked prefix per partition (a partition missing: 0). */
  readonly cursors: ReadonlyMap<number, number>;
  /** The group's tags (absent or empty: every event of its filter). */
  readonly tags?: readonly string[];
}

/** The metrics the keeper keeps (the drainer's registry provides them). */
export interface RetentionMetrics {
  /** Events trimmed, per partition. */
  readonly trimmed: Counter<'partition'>;
  /** First retained sequence, per partition. */
  readonly first: Gauge<'partition'>;
  /** Events trimmed past a consumer group's cursor because a hard cap was reached, per group. */
  readonly forced: Counter<'group'>;
  /** 1 when the partition's last round ran out of budget with expired events left, per partition. */
  readonly behind?: Gauge<'partition'>;
}

/** What one round did to a partition. */
export interface RoundOutcome {
  readonly first: number;
  readonly deleted: number;
  /** Groups whose unsettled events a hard cap forced out (they are told when they next read). */
  readonly forced: readonly string[];
  readonly tombstones: number;
  /** The round ran out of budget with expired events left to trim (the next round goes on). */
  readonly behind: boolean;
}

/** Events one round looks at per partition: bounds its reads whatever the backlog. */
export const SCAN_BUDGET = 10_000;
/**
 * Events one trim call deletes (several calls per round, up to the scan budget). Small, so
 * an append that waits behind a delete waits briefly.
 */
export const DELETE_BATCH = 100;
/**
 * Events one trim call deletes while the drainer is moving messages (see {@link AppendTraffic}):
 * a delete that runs beside an append delays it by about its own length.
 */
export const BUSY_DELETE_BATCH = 25;
/** Longest pause after one call (a call slowed by an outage is not made up for at length). */
const MAX_PAUSE_MS = 5_000;
/** Shortest wait for appends to finish before a call (the pause before it may be shorter). */
const MIN_YIELD_MS = 20;
/** Events read per page when catching the snapshot up. */
const PAGE = 200;

/**
 * The appends of the process a keeper runs in (a drainer's), which retention gives way to:
 * its calls share the database with them, and every call that runs beside an append
 * delays that append.
 */
export interface AppendTraffic {
  /**
   * Resolves once no append is under way, or after `maxWaitMs` (or on `signal`) whatever the
   * appends do; then `true` when appends are still under way or were a moment ago.
   */
  quiet(maxWaitMs: number, signal?: AbortSignal): Promise<boolean>;
}

/** Per partition and epoch: how far the snapshot reflects the log, as this holder knows it. */
interface Mark {
  epoch: number;
  /** Every event up to here is in the snapshot (written or not yet persisted). */
  upTo: number;
  /** What the fence document says. */
  persisted: number;
}

/**
 * Retention for the partitions one drainer holds, under their lease epochs:
 * keeps the latest-value snapshot of compacted topics as events are appended,
 * and trims each partition's expired prefix in bounded rounds.
 *
 * Invariants:
 * - Only a prefix is trimmed: the first event to keep stops the round (so a
 *   long-kept topic sharing a partition holds back the others behind it), and
 *   a hole inside the retained range is never trimmed over (readers report it).
 * - An event of a compacted topic is trimmed only once the snapshot reflects
 *   it (sequence at or below the partition's persisted watermark).
 * - With `keepForGroups`, an expired event a registered group wants (its filter and
 *   tags) and has not acked is kept, until a hard cap forces it out (counted per
 *   group). "Not acked" is by the group's cursor (see {@link GroupInterest}).
 * - Each trim records the highest trimmed sequence whose event carried tags
 *   (`taggedTo`), before it deletes: what tagged readers decide on.
 * - Every write is fenced by the caller's epoch: a fenced holder trims nothing.
 * - Rounds are paced: after each storage call the keeper waits so that its calls
 *   take at most the policies' `dutyCycle` share of the time. With {@link AppendTraffic}
 *   it also gives way to appends: a call starts once none is under way, waiting at most
 *   as long as the pause before it (so under any load it keeps at least half its share),
 *   and deletes {@link BUSY_DELETE_BATCH} events at a time while appends keep coming,
 *   unless the partition's last round fell behind (then {@link DELETE_BATCH}).
 */
export class RetentionKeeper {
  readonly #log: RetentionLog;
  readonly #policies: RetentionPolicies;
  readonly #metrics: RetentionMetrics | undefined;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #traffic: AppendTraffic | undefined;
  readonly #marks = new Map<number, Mark>();
  /** Partitions whose last round ran out of budget: they trim in full batches, busy or not. */
  readonly #behind = new Set<number>();

  constructor(deps: {
    log: RetentionLog;
    policies: RetentionPolicies;
    logger: Logger;
    metrics?: RetentionMetrics;
    now?: () => number;
    traffic?: AppendTraffic;
  }) {
    this.#log = deps.log;
    this.#traffic = deps.traffic;
    this.#policies = deps.policies;
    this.#logger = deps.logger;
    this.#metrics = deps.metrics;
    this.#now = deps.now ?? Date.now;
  }

  get policies(): RetentionPolicies {
    return this.#policies;
  }

  /**
   * Events `appended` (in order) to `partition` under `epoch`: the keys of compacted
   * topics go into the snapshot now, so their latest values are fresh; the watermark
   * moves with them when they follow on from it (else the next round catches up).
   */
  async appended(partition: number, epoch: number, appended: readonly LogEvent[]): Promise<void> {
    if (!this.#policies.compacts || appended.length === 0) return;
    const mark = await this.#mark(partition, epoch);
    const compacted = appended.filter((e) => e.key !== null && this.#policies.forTopic(e.topic).compact);
    const last = (appended.at(-1) as LogEvent).seq;
    const follows = (appended[0] as LogEvent).seq === mark.upTo + 1;
    if (follows) mark.upTo = last;
    if (compacted.length === 0) return;
    await this.#log.compact(partition, epoch, compacted, follows ? last : mark.persisted);
    if (follows) mark.persisted = last;
  }

  /** Forgets what it knew of `partition` (its lease is gone). */
  forget(partition: number): void {
    this.#marks.delete(partition);
    this.#behind.delete(partition);
  }

  /**
   * One bounded round on a held partition: snapshot catch-up, then trimming, then old
   * tombstones, paced by the duty cycle. `signal` ends its pauses (the round then throws
   * the abort reason).
   */
  async round(partition: number, epoch: number, groups: readonly GroupInterest[], signal?: AbortSignal): Promise<RoundOutcome> {
    let yieldMs = MIN_YIELD_MS;
    const paced = async <T>(call: (busy: boolean) => Promise<T>): Promise<T> => {
      const { result, pause } = await this.#paced(call, yieldMs, signal);
      yieldMs = Math.max(MIN_YIELD_MS, pause);
      return result;
    };
    if (this.#policies.compacts) await this.#catchUp(partition, epoch, paced);
    const { first, compactedTo } = await this.#log.retention(partition);
    const head = (await this.#log.head(partition)).seq;
    const now = this.#now();
    const forced = new Set<string>();
    // The highest sequence below the cut whose event carries tags: recorded with the trim.
    let taggedBelow = 0;
    let cut = first;
    let after = first - 1;
    let scanned = 0;
    // Whether the scan found where trimming stops (an event to keep, a hole, the head), not its budget's end.
    let stopped = false;
    scan: while (scanned < SCAN_BUDGET) {
      const metas = await paced(() => this.#log.scan(partition, after, Math.min(PAGE, SCAN_BUDGET - scanned)));
      stopped = metas.length === 0;
      if (stopped) break;
      scanned += metas.length;
      for (const m of metas) {
        // A hole inside the retained range: never trimmed over (readers report it).
        stopped = m.seq !== after + 1;
        if (stopped) break scan;
        const holders = this.#expired(m, partition, head, now, compactedTo, groups);
        stopped = holders === undefined;
        if (holders === undefined) break scan;
        for (const g of holders) forced.add(g);
        if (m.tags !== undefined && m.tags.length > 0) taggedBelow = m.seq;
        cut = m.seq + 1;
        after = m.seq;
      }
    }
    let deleted = 0;
    let firstNow = first;
    // Even with nothing new to trim, events a crash left below `first` are deleted; at most
    // one scan budget's worth per round.
    let batch = DELETE_BATCH;
    let deletedAll = false;
    // Small deletes beside appends, as long as trimming keeps up; a partition that fell behind
    // takes its full share (else a busy drainer's log would grow without bound).
    const gentle = !this.#behind.has(partition);
    for (let calls = 0; deleted <= SCAN_BUDGET && calls <= SCAN_BUDGET / BUSY_DELETE_BATCH; calls++) {
      const r = await paced((busy) =>
        this.#log.trim(partition, epoch, cut, (batch = busy && gentle ? BUSY_DELETE_BATCH : DELETE_BATCH), taggedBelow),
      );
      firstNow = r.first;
      deleted += r.deleted;
      // Counted as it goes: a long round shows its progress, not only its end.
      if (r.deleted > 0) this.#metrics?.trimmed.inc({ partition: String(partition) }, r.deleted);
      deletedAll = r.deleted < batch;
      if (deletedAll) break;
    }
    const behind = !stopped || !deletedAll;
    if (behind) this.#behind.add(partition);
    else this.#behind.delete(partition);
    const tombstones = this.#policies.compacts
      ? await paced(() => this.#log.purgeTombstones(partition, new Date(now - this.#policies.tombstoneGraceMs), DELETE_BATCH))
      : 0;
    const p = String(partition);
    // Exported from the first round on, at 0 while nothing is trimmed.
    this.#metrics?.trimmed.inc({ partition: p }, 0);
    this.#metrics?.first.set({ partition: p }, firstNow);
    this.#metrics?.behind?.set({ partition: p }, behind ? 1 : 0);
    for (const g of forced) this.#metrics?.forced.inc({ group: g }, 1);
    if (forced.size > 0)
      this.#logger.warn('retention trimmed events consumer groups had not acked: a hard cap was reached', {
        partition,
        groups: [...forced],
        first: firstNow,
      });
    return { first: firstNow, deleted, forced: [...forced], tombstones, behind };
  }

  /**
   * Whether `m` may go: `undefined` to keep it (the round stops there), else the groups
   * a hard cap forces it away from (usually none).
   */
  #expired(
    m: EventMeta,
    partition: number,
    head: number,
    now: number,
    compactedTo: number,
    groups: readonly GroupInterest[],
  ): string[] | undefined {
    const policy = this.#policies.forTopic(m.topic);
    // The snapshot holds the key's latest value: the log may let this one go once reflected there.
    if (policy.compact) return m.seq <= compactedTo ? [] : undefined;
    const age = now - m.publishedAt.getTime();
    const newer = head - m.seq;
    const expired =
      (policy.maxAgeMs !== undefined && age > policy.maxAgeMs) || (policy.maxEvents !== undefined && newer >= policy.maxEvents);
    if (!expired) return undefined;
    if (!policy.keepForGroups) return [];
    const holders = groups
      .filter((g) => (g.cursors.get(partition) ?? 0) < m.seq && g.filter.matches(m.topic) && carriesAll(m.tags, g.tags))
      .map((g) => g.name);
    if (holders.length === 0) return [];
    const capped =
      (policy.hardMaxAgeMs !== undefined && age > policy.hardMaxAgeMs) ||
      (policy.hardMaxEvents !== undefined && newer >= policy.hardMaxEvents);
    return capped ? holders : undefined;
  }

  /**
   * Gives way to appends under way (at most `yieldMs`), runs one storage call, then waits so
   * that calls take at most the duty cycle's share of the time; returns that pause too.
   */
  async #paced<T>(
    call: (busy: boolean) => Promise<T>,
    yieldMs: number,
    signal: AbortSignal | undefined,
  ): Promise<{ result: T; pause: number }> {
    const busy = (await this.#traffic?.quiet(yieldMs, signal)) ?? false;
    signal?.throwIfAborted();
    const started = performance.now();
    const result = await call(busy);
    const duty = this.#policies.dutyCycle;
    const pause = Math.min(MAX_PAUSE_MS, ((performance.now() - started) * (1 - duty)) / duty);
    if (pause >= 1) await sleep(pause, undefined, signal === undefined ? {} : { signal });
    return { result, pause };
  }

  /** Brings the snapshot up to the head (bounded per round), then persists the watermark. */
  async #catchUp(partition: number, epoch: number, paced: <T>(call: (busy: boolean) => Promise<T>) => Promise<T>): Promise<void> {
    const mark = await this.#mark(partition, epoch);
    const head = (await this.#log.head(partition)).seq;
    // Trimmed before compaction was configured: those events are gone, the snapshot starts after them.
    const { first } = await this.#log.retention(partition);
    if (mark.upTo < first - 1) mark.upTo = first - 1;
    for (let read = 0; mark.upTo < head && read < SCAN_BUDGET; read += PAGE) {
      const events = await paced(() =>
        this.#log.read({ partition, afterSeq: mark.upTo, limit: PAGE, toSeq: Math.min(head, mark.upTo + PAGE) }),
      );
      if (events.length === 0) break;
      let upTo = mark.upTo;
      for (const e of events) {
        if (e.seq !== upTo + 1) break; // a hole: the snapshot waits for it like every reader
        upTo = e.seq;
      }
      if (upTo === mark.upTo) break;
      const compacted = events.filter((e) => e.seq <= upTo && e.key !== null && this.#policies.forTopic(e.topic).compact);
      await paced(() => this.#log.compact(partition, epoch, compacted, upTo));
      mark.upTo = upTo;
      mark.persisted = upTo;
    }
    if (mark.persisted < mark.upTo) {
      await this.#log.compact(partition, epoch, [], mark.upTo);
      mark.persisted = mark.upTo;
    }
  }

  async #mark(partition: number, epoch: number): Promise<Mark> {
    const known = this.#marks.get(partition);
    if (known && known.epoch === epoch) return known;
    const { compactedTo } = await this.#log.retention(partition);
    const mark = { epoch, upTo: compactedTo, persisted: compactedTo };
    this.#marks.set(partition, mark);
    return mark;
  }
}

/** Whether an event with `have` carries every tag in `want` (none wanted: every event does), as a group's reader decides. */
function carriesAll(have: readonly string[] | undefined, want: readonly string[] | undefined): boolean {
  if (want === undefined || want.length === 0) return true;
  return have !== undefined && want.every((t) => have.includes(t));
}
