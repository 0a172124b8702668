import { randomBytes } from 'node:crypto';
import type { Collection, Db, Filter } from 'mongodb';
import { ensureCollections, followChangeStream, isDuplicateKeyError } from '../mongo/index.js';
import { MatchTally } from './count.js';
import { EventLogError, assertLimit, assertPartition, fenced } from './errors.js';
import type {
  AppendResult,
  EventInput,
  EventLog,
  LogEvent,
  MatchCount,
  MatchQuery,
  PartitionHead,
  ReadRange,
  SequenceGap,
  StallReport,
} from './types.js';

interface EventDocument {
  _id: string;
  topic: string;
  key: string | null;
  partition: number;
  seq: number;
  epoch: number;
  /** Nonce of the append call that wrote it: tells a writer its own documents from a racing writer's. */
  w: string;
  payload: unknown;
  headers: Record<string, string>;
  createdAt: Date;
  publishedAt: Date;
  digest?: string;
  gap?: true;
}

/**
 * One per partition: the highest epoch that claimed it, and the insert its
 * holder has in progress (`next.ids[i]` goes to seq `next.from + i`). Written
 * before every append as the fence check, it lets a claim or a reader find the
 * head and the ids logged by the last append with `_id` lookups only, which
 * every server serves from its index (FerretDB scans for anything else).
 */
interface FenceDocument {
  _id: number;
  epoch: number;
  next?: { from: number; ids: string[] };
}

interface StallDocument {
  _id: string;
  partition: number;
  seq: number;
  since: Date;
  reporter: string;
  updatedAt: Date;
}

/** Collection names used by {@link MongoEventLog}. */
export interface EventCollections {
  events: string;
  /** One fence document per partition: the highest epoch that claimed it. */
  fences: string;
  /** Readers' reports of partitions that do not advance past a missing sequence. */
  stalls: string;
}

/** Default collection names. */
export const DEFAULT_EVENT_COLLECTIONS: Readonly<EventCollections> = Object.freeze({
  events: 'events',
  fences: 'event_fences',
  stalls: 'event_stalls',
});

/** Index set of the events collection. */
export const EVENT_INDEXES = [
  { key: { partition: 1, seq: 1 }, name: 'partition_seq', unique: true },
  { key: { topic: 1, partition: 1, seq: 1 }, name: 'topic_partition_seq' },
  { key: { topic: 1, key: 1, seq: -1 }, name: 'topic_key_seq' },
] as const;

/** Idempotent start-up migration for the event log. */
export async function migrateEventLog(db: Db, names: Partial<EventCollections> = {}): Promise<void> {
  const n = { ...DEFAULT_EVENT_COLLECTIONS, ...names };
  await ensureCollections(db, [
    { name: n.events, indexes: EVENT_INDEXES.map((i) => ({ ...i, key: { ...i.key } })) },
    { name: n.fences, indexes: [] },
    { name: n.stalls, indexes: [] },
  ]);
}

/**
 * Most documents one insert call carries. FerretDB 1.x runs an insert in chunks
 * of 100 (its default batch size) and, after a chunk fails, goes on with the
 * next one: only within a chunk does an ordered insert stop at the first
 * failure. Calls of at most this size land as a contiguous prefix on every
 * server we know.
 */
export const APPEND_CHUNK = 100;

/**
 * How many of a partition's latest ids a writer remembers (and a claim reads
 * when the fence records no insert). At least the largest drainer batch: a
 * holder that dies between its append and the outbox removal leaves at most one
 * batch logged but still pending.
 */
const RECENT_WINDOW = 5_000;

/**
 * Ranges of one partition closer than this are read as one by `countMatching`:
 * fewer `$or` clauses (FerretDB evaluates each on every document it scans, about
 * 0.3 s per clause over 100,000 events) for at most this many extra events each.
 */
const UNION_SLACK = 1_000;

/** Bound on conflict rounds within one append (each follows a racing writer's progress). */
const MAX_CONFLICT_ROUNDS = 10;

/** Bound on the filler events one repair writes. */
const MAX_REPAIR = 100_000;

function toEvent(d: EventDocument): LogEvent {
  return {
    id: d._id,
    topic: d.topic,
    key: d.key,
    partition: d.partition,
    seq: d.seq,
    payload: d.payload,
    headers: d.headers ?? {},
    createdAt: d.createdAt,
    publishedAt: d.publishedAt,
    ...(d.digest === undefined ? {} : { digest: d.digest }),
    ...(d.gap ? { gap: true as const } : {}),
  };
}

/** What this process knows of a partition it writes: never ahead of the log. */
interface WriterState {
  /** A sequence number present in the log (0 = empty); all appends go after it. */
  head: number;
  /** Recently appended ids, oldest first (a bounded set). */
  recent: Set<string>;
}

/**
 * {@link EventLog} on MongoDB without multi-document transactions, so it runs on
 * any MongoDB-wire server (FerretDB and mongo-java-server included).
 *
 * Safety rests only on the two unique indexes every such server enforces:
 * `_id` (a message is in the log at most once) and `(partition, seq)` (one
 * event per slot). Never on ordered-insert or read-modify-write semantics:
 *
 * - A writer only ever inserts at `head + 1..` where `head` is a sequence it
 *   has seen present, so nothing it writes can sit above an empty slot unless
 *   the server lands an insert partially out of order.
 * - Each insert carries at most {@link APPEND_CHUNK} documents and the next
 *   is sent only after the previous one fully succeeded.
 * - After any failed or short insert the writer reads back what landed: its own
 *   documents that form a contiguous prefix are kept; any of its documents
 *   above an empty slot are deleted again (no reader can have passed the empty
 *   slot, readers only advance over contiguous sequences); ids found elsewhere
 *   in the log are duplicates; a slot taken by another writer moves the head.
 *
 * Fencing: `claim` raises the partition's fence epoch; `append` checks it and
 * refuses with `FENCED` when a newer epoch has claimed. On servers whose
 * read-modify-write is not atomic (FerretDB 1.x) the fence is best effort: two
 * writers may then both append for a moment, and the rules above still keep
 * one gap-free copy in the order both read from the outbox.
 */
export class MongoEventLog implements EventLog {
  readonly #events: Collection<EventDocument>;
  readonly #fences: Collection<FenceDocument>;
  readonly #stalls: Collection<StallDocument>;
  readonly #writers = new Map<number, WriterState>();

  constructor(db: Db, names: Partial<EventCollections> = {}) {
    const n = { ...DEFAULT_EVENT_COLLECTIONS, ...names };
    this.#events = db.collection<EventDocument>(n.events);
    this.#fences = db.collection<FenceDocument>(n.fences);
    this.#stalls = db.collection<StallDocument>(n.stalls);
  }

  async claim(partition: number, epoch: number): Promise<number> {
    assertPartition(partition);
    if (!Number.isSafeInteger(epoch) || epoch < 1)
      throw new EventLogError('INVALID_EPOCH', `epoch must be a positive integer, got ${epoch}`);
    const fence = await this.#raiseFence(partition, epoch);
    const state = await this.#stateFrom(partition, fence);
    this.#writers.set(partition, state);
    if (!fence.next) {
      // Record where the log stands, so later claims and heads need no scan.
      await this.#fences.updateOne({ _id: partition, epoch }, { $set: { next: { from: state.head + 1, ids: [] } } });
    }
    return state.head;
  }

  async checkFence(partition: number, epoch: number): Promise<void> {
    const fence = await this.#fences.findOne({ _id: partition }, { projection: { epoch: 1 } });
    if ((fence?.epoch ?? 0) > epoch) throw this.#fenced(partition, epoch);
  }

  /** Raises the fence to `epoch` (or finds it there already); throws `FENCED` when it is higher. */
  async #raiseFence(partition: number, epoch: number): Promise<FenceDocument> {
    try {
      const fence = await this.#fences.findOneAndUpdate(
        { _id: partition, epoch: { $lte: epoch } },
        { $set: { epoch } },
        { upsert: true, returnDocument: 'after' },
      );
      if (!fence || fence.epoch !== epoch) throw fenced(partition, epoch);
      return fence;
    } catch (err) {
      // The upsert collided with a fence document of a higher epoch.
      if (isDuplicateKeyError(err)) throw this.#fenced(partition, epoch);
      throw err;
    }
  }

  /** Records the inserts an append is about to make, if our epoch still holds the fence (else `FENCED`). */
  async #plan(partition: number, epoch: number, next: NonNullable<FenceDocument['next']>): Promise<void> {
    try {
      const r = await this.#fences.updateOne({ _id: partition, epoch: { $lte: epoch } }, { $set: { epoch, next } }, { upsert: true });
      if (r.matchedCount === 0 && r.upsertedCount === 0) throw this.#fenced(partition, epoch);
    } catch (err) {
      if (isDuplicateKeyError(err)) throw this.#fenced(partition, epoch);
      throw err;
    }
  }

  #fenced(partition: number, epoch: number): EventLogError {
    this.#writers.delete(partition);
    return fenced(partition, epoch);
  }

  /**
   * The head and latest ids from the fence's recorded insert: the ids of it that
   * landed, in order, are found by `_id`; the head is the last of them (or the
   * slot before it). Only a partition never written by this version needs a scan.
   */
  async #stateFrom(partition: number, fence: FenceDocument | null): Promise<WriterState> {
    const next = fence?.next;
    if (!next) return this.#scanState(partition);
    const landed = await this.#landedPrefix(partition, next);
    return { head: next.from - 1 + landed.length, recent: new Set(landed) };
  }

  /**
   * The ids of `next` that are in the log at their planned slots. Inserts land
   * as a prefix (each call carries at most {@link APPEND_CHUNK} documents and
   * what lands above an empty slot is taken back), so a binary search finds the
   * end of it in log2(n) `_id` lookups (one when the whole insert landed, the
   * usual case).
   */
  async #landedPrefix(partition: number, next: NonNullable<FenceDocument['next']>): Promise<string[]> {
    const landed = async (i: number): Promise<boolean> => {
      const d = await this.#events.findOne({ _id: next.ids[i] }, { projection: { seq: 1, partition: 1 } });
      return d !== null && d.partition === partition && d.seq === next.from + i;
    };
    // Almost always the whole insert landed: one lookup of its last id says so.
    if (next.ids.length === 0 || (await landed(next.ids.length - 1))) return [...next.ids];
    let [lo, hi] = [0, next.ids.length - 1]; // ids[0..lo) landed; ids[hi..) did not
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (await landed(mid)) lo = mid + 1;
      else hi = mid;
    }
    return next.ids.slice(0, lo);
  }

  /** Documents by `_id`, as parallel equality lookups (served from the `_id` index on every server). */
  async #byIds(ids: readonly string[]): Promise<Map<string, Pick<EventDocument, '_id' | 'seq' | 'partition' | 'w'>>> {
    const docs = await Promise.all(ids.map((_id) => this.#events.findOne({ _id }, { projection: { _id: 1, seq: 1, partition: 1, w: 1 } })));
    return new Map(docs.filter((d) => d !== null).map((d) => [d._id, d]));
  }

  async append(partition: number, epoch: number, input: readonly EventInput[]): Promise<AppendResult> {
    assertPartition(partition);
    const known = this.#writers.get(partition);
    if (!known) {
      // Not claimed by this process: learn the head from the fence (never above the truth).
      this.#writers.set(partition, await this.#stateFrom(partition, await this.#fences.findOne({ _id: partition })));
    }
    const state = this.#writers.get(partition) as WriterState;
    const appended: LogEvent[] = [];
    const duplicates: string[] = [];
    let pending: EventInput[] = [];
    const seen = new Set<string>();
    for (const e of input) {
      if (state.recent.has(e.id) || seen.has(e.id)) duplicates.push(e.id);
      else pending.push(e);
      seen.add(e.id);
    }
    let conflicts = 0;
    // The fence check: record the inserts about to happen (pending[i] at head + 1 + i), only while our
    // epoch holds the fence. Recorded again only when a conflict changes that plan.
    let replan = true;
    const checked = pending.length > 0;
    while (pending.length > 0) {
      if (replan) {
        await this.#plan(partition, epoch, { from: state.head + 1, ids: pending.map((e) => e.id) });
        replan = false;
      }
      const chunk = pending.slice(0, APPEND_CHUNK);
      const nonce = randomBytes(6).toString('base64url');
      const publishedAt = new Date();
      const docs: EventDocument[] = chunk.map((e, i) => ({
        _id: e.id,
        topic: e.topic,
        key: e.key,
        partition,
        seq: state.head + 1 + i,
        epoch,
        w: nonce,
        payload: e.payload,
        headers: e.headers,
        createdAt: e.createdAt,
        publishedAt,
        ...(e.digest === undefined ? {} : { digest: e.digest }),
      }));
      let failure: unknown;
      try {
        const r = await this.#events.insertMany(docs, { ordered: true });
        if (r.insertedCount === docs.length) {
          this.#accept(state, docs, appended);
          pending = pending.slice(docs.length);
          continue;
        }
        failure = new EventLogError('CONFLICT', `the server acknowledged ${r.insertedCount} of ${docs.length} inserts`);
      } catch (err) {
        failure = err;
      }
      // Find out exactly what landed before deciding anything.
      const outcome = await this.#settle(state, docs, appended);
      duplicates.push(...outcome.elsewhere);
      const settled = new Set([...outcome.elsewhere, ...outcome.accepted]);
      pending = pending.filter((e) => !settled.has(e.id));
      replan = true;
      if (settled.size > 0) continue;
      // Nothing of ours landed and no duplicate explains it: either a racing writer took
      // the slot, or the insert failed for another reason.
      if (!isDuplicateKeyError(failure)) throw failure;
      if (++conflicts > MAX_CONFLICT_ROUNDS) {
        this.#writers.delete(partition);
        throw new EventLogError('CONFLICT', `append to partition ${partition} kept conflicting after ${MAX_CONFLICT_ROUNDS} rounds`, {
          cause: failure,
        });
      }
      await this.checkFence(partition, epoch);
      state.head = await this.#maxSeq(partition);
    }
    // Nothing to insert (all duplicates): still refuse a fenced writer.
    if (!checked && input.length > 0) await this.checkFence(partition, epoch);
    return { appended, duplicates, head: state.head };
  }

  /**
   * Reads back a failed insert's documents: keeps the contiguous prefix that is
   * ours, deletes our documents that landed above an empty slot, and lists ids
   * that are in the log from another write.
   */
  async #settle(state: WriterState, docs: EventDocument[], appended: LogEvent[]): Promise<{ accepted: string[]; elsewhere: string[] }> {
    const byId = await this.#byIds(docs.map((d) => d._id));
    const ours = (d: EventDocument): boolean => {
      const f = byId.get(d._id);
      return f !== undefined && f.w === d.w && f.seq === d.seq && f.partition === d.partition;
    };
    let prefix = 0;
    while (prefix < docs.length && ours(docs[prefix] as EventDocument)) prefix++;
    const accepted = docs.slice(0, prefix);
    const strays = docs.slice(prefix).filter(ours);
    if (strays.length > 0) {
      // Only a server that lands an ordered insert out of order gets here.
      const slot = (docs[prefix] as EventDocument).seq;
      const occupied = await this.#events.findOne(
        { partition: (docs[0] as EventDocument).partition, seq: slot },
        { projection: { _id: 1 } },
      );
      if (occupied === null) {
        // Above an empty slot: no reader has passed it, so removing them again is invisible.
        await this.#events.deleteMany({ _id: { $in: strays.map((d) => d._id) }, w: (strays[0] as EventDocument).w });
      } else {
        // Contiguous behind another writer's event: readers may have seen them, so they stay.
        accepted.push(...strays);
      }
    }
    this.#accept(state, accepted, appended);
    const elsewhere = docs.filter((d) => byId.has(d._id) && !ours(d)).map((d) => d._id);
    return { accepted: accepted.map((d) => d._id), elsewhere };
  }

  #accept(state: WriterState, docs: readonly EventDocument[], appended: LogEvent[]): void {
    for (const d of docs) {
      appended.push(toEvent(d));
      state.recent.add(d._id);
      state.head = Math.max(state.head, d.seq);
    }
    for (const id of state.recent) {
      if (state.recent.size <= RECENT_WINDOW) break;
      state.recent.delete(id);
    }
  }

  /** Head and latest ids by reading the partition's end: a scan where the server has no usable index. */
  async #scanState(partition: number): Promise<WriterState> {
    const latest = await this.#events
      .find({ partition }, { sort: { seq: -1 }, limit: RECENT_WINDOW, projection: { _id: 1, seq: 1 } })
      .toArray();
    return { head: latest[0]?.seq ?? 0, recent: new Set(latest.reverse().map((d) => d._id)) };
  }

  async read(range: ReadRange): Promise<LogEvent[]> {
    const after = range.afterSeq ?? 0;
    if (!Number.isSafeInteger(range.partition) || range.partition < 0)
      throw new EventLogError('INVALID_RANGE', 'partition must be a non-negative integer');
    if (!Number.isSafeInteger(after) || after < 0) throw new EventLogError('INVALID_RANGE', 'afterSeq must be a non-negative integer');
    assertLimit(range.limit);
    const filter = { ...(range.topic === undefined ? {} : { topic: range.topic }), partition: range.partition, seq: { $gt: after } };
    const docs = await this.#events.find(filter, { sort: { seq: 1 }, limit: range.limit }).toArray();
    return docs.map(toEvent);
  }

  async readAfter(positions: ReadonlyMap<number, number>, limit: number): Promise<LogEvent[]> {
    if (positions.size === 0) return [];
    assertLimit(limit);
    const clauses = [...positions].map(([partition, after]) => ({ partition, seq: { $gt: after } }));
    const docs = await this.#events
      .find(clauses.length === 1 ? (clauses[0] as object) : { $or: clauses }, { sort: { partition: 1, seq: 1 }, limit })
      .toArray();
    return docs.map(toEvent);
  }

  async countMatching(queries: readonly MatchQuery[]): Promise<Array<Map<number, MatchCount>>> {
    const tally = new MatchTally(queries);
    // One read for every query: each merged range is index-backed ((partition, seq)) and bounded by the caller.
    const clauses = [...tally.union(UNION_SLACK)].flatMap(([partition, ranges]) =>
      ranges.map((r) => ({ partition, seq: { $gt: r.afterSeq, $lte: r.toSeq } })),
    );
    if (clauses.length > 0) {
      const cursor = this.#events.find(clauses.length === 1 ? (clauses[0] as Filter<EventDocument>) : { $or: clauses }, {
        projection: { _id: 0, partition: 1, seq: 1, topic: 1, publishedAt: 1, gap: 1 },
      });
      for await (const d of cursor) tally.add(d);
    }
    return tally.results();
  }

  async head(partition: number): Promise<PartitionHead> {
    const fence = await this.#fences.findOne({ _id: partition });
    const seq = fence?.next ? (await this.#stateFrom(partition, fence)).head : await this.#maxSeq(partition);
    return { seq, epoch: fence?.epoch ?? 0 };
  }

  async latestByKey(topic: string, key: string): Promise<LogEvent | null> {
    const d = await this.#events.findOne({ topic, key }, { sort: { seq: -1 } });
    return d ? toEvent(d) : null;
  }

  async get(id: string): Promise<LogEvent | null> {
    const d = await this.#events.findOne({ _id: id });
    return d ? toEvent(d) : null;
  }

  async present(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    // One id is the common case (a single publish): an `_id` equality every server serves from its index.
    const filter = ids.length === 1 ? { _id: ids[0] as string } : { _id: { $in: [...ids] } };
    const docs = await this.#events.find(filter, { projection: { _id: 1 } }).toArray();
    return new Set(docs.map((d) => d._id));
  }

  async findGap(partition: number, afterSeq: number): Promise<SequenceGap | null> {
    assertPartition(partition);
    if (!Number.isSafeInteger(afterSeq) || afterSeq < 0)
      throw new EventLogError('INVALID_RANGE', 'afterSeq must be a non-negative integer');
    const next = await this.#events.findOne(
      { partition, seq: { $gt: afterSeq } },
      { sort: { seq: 1 }, projection: { seq: 1, publishedAt: 1 } },
    );
    if (!next || next.seq === afterSeq + 1) return null;
    return { partition, from: afterSeq + 1, to: next.seq - 1, nextPublishedAt: next.publishedAt };
  }

  async repairGap(partition: number, afterSeq: number, options: { minAgeMs: number }): Promise<SequenceGap | null> {
    const gap = await this.findGap(partition, afterSeq);
    if (!gap) return null;
    const age = Date.now() - gap.nextPublishedAt.getTime();
    if (age < options.minAgeMs) {
      throw new EventLogError(
        'GAP_TOO_RECENT',
        `partition ${partition}: the event after the gap is ${Math.round(age / 1000)} s old; a write may still be landing (wait ${Math.ceil(options.minAgeMs / 1000)} s)`,
      );
    }
    if (gap.to - gap.from + 1 > MAX_REPAIR)
      throw new EventLogError('INVALID_RANGE', `gap of ${gap.to - gap.from + 1} events is too large to fill`);
    const now = new Date();
    for (let from = gap.from; from <= gap.to; from += APPEND_CHUNK) {
      const fillers: EventDocument[] = [];
      for (let seq = from; seq <= Math.min(gap.to, from + APPEND_CHUNK - 1); seq++) {
        fillers.push({
          _id: `gap:${partition}:${seq}`,
          topic: '',
          key: null,
          partition,
          seq,
          epoch: 0,
          w: 'repair',
          payload: null,
          headers: {},
          createdAt: now,
          publishedAt: now,
          gap: true,
        });
      }
      try {
        await this.#events.insertMany(fillers, { ordered: false });
      } catch (err) {
        // A slot taken meanwhile (a late write or a second repair) is exactly what we wanted.
        if (!isDuplicateKeyError(err)) throw err;
      }
    }
    return gap;
  }

  async reportStall(partition: number, reporter: string, stall: { seq: number; since: Date } | null): Promise<void> {
    const _id = `${partition}/${reporter}`;
    if (stall === null) {
      await this.#stalls.deleteOne({ _id });
      return;
    }
    await this.#stalls.updateOne(
      { _id },
      { $set: { partition, seq: stall.seq, since: stall.since, reporter, updatedAt: new Date() } },
      { upsert: true },
    );
  }

  async stalls(): Promise<StallReport[]> {
    const docs = await this.#stalls.find({}, { sort: { since: 1 }, limit: 1000 }).toArray();
    return docs.map((d) => ({ partition: d.partition, seq: d.seq, since: d.since, reporter: d.reporter, updatedAt: d.updatedAt }));
  }

  watchAppends(onAppend: (partition: number) => void, onError: (err: unknown) => void): () => Promise<void> {
    return followChangeStream<{ fullDocument?: { partition?: number } }>(
      () =>
        this.#events.watch([{ $match: { operationType: 'insert' } }, { $project: { 'fullDocument.partition': 1 } }], {
          // The drainer appends in chunks: wake once per chunk is plenty, the tail reads everything new.
          batchSize: 1_000,
        }),
      (change) => {
        if (typeof change.fullDocument?.partition === 'number') onAppend(change.fullDocument.partition);
      },
      onError,
    );
  }

  async #maxSeq(partition: number): Promise<number> {
    const last = await this.#events.findOne({ partition }, { sort: { seq: -1 }, projection: { seq: 1 } });
    return last?.seq ?? 0;
  }
}
