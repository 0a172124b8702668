import { randomBytes } from 'node:crypto';
import type { Collection, Db, Filter } from 'mongodb';
import { followChangeStream, isDuplicateKeyError } from '../mongo/index.js';
import { MatchTally } from './count.js';
import { EventLogError, assertLimit, assertPartition, fenced } from './errors.js';
import {
  eventExtras,
  APPEND_CHUNK,
  DEFAULT_EVENT_COLLECTIONS,
  toEvent,
  type EventCollections,
  type EventDocument,
  type FenceDocument,
  type LatestDocument,
  type StallDocument,
} from './mongo-documents.js';
import * as retention from './mongo-retention.js';
import type { RetentionCollections } from './mongo-retention.js';
import * as repair from './mongo-repair.js';
import { accept, maxSeq, settleInsert, stateFrom, type WriterState } from './mongo-writer.js';
import type {
  AppendResult,
  EventInput,
  EventLog,
  EventMeta,
  EventSize,
  LogEvent,
  MatchCount,
  MatchQuery,
  PartitionHead,
  PartitionRetention,
  ReadRange,
  SequenceGap,
  SnapshotCursor,
  StallReport,
} from './types.js';
import type { TopicPattern } from '../topic/index.js';

// The package index exports these from here: MongoEventLog's documents, names and migration.
export { APPEND_CHUNK, DEFAULT_EVENT_COLLECTIONS, EVENT_INDEXES, migrateEventLog, type EventCollections } from './mongo-documents.js';

/**
 * Ranges of one partition closer than this are read as one by `countMatching`:
 * fewer `$or` clauses (FerretDB evaluates each on every document it scans, about
 * 0.3 s per clause over 100,000 events) for at most this many extra events each.
 */
const UNION_SLACK = 1_000;

/** Bound on conflict rounds within one append (each follows a racing writer's progress). */
const MAX_CONFLICT_ROUNDS = 10;

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
  readonly #retention: RetentionCollections;
  readonly #writers = new Map<number, WriterState>();

  constructor(db: Db, names: Partial<EventCollections> = {}) {
    const n = { ...DEFAULT_EVENT_COLLECTIONS, ...names };
    this.#events = db.collection<EventDocument>(n.events);
    this.#fences = db.collection<FenceDocument>(n.fences);
    this.#stalls = db.collection<StallDocument>(n.stalls);
    this.#retention = { events: this.#events, fences: this.#fences, latest: db.collection<LatestDocument>(n.latest) };
  }

  async claim(partition: number, epoch: number): Promise<number> {
    assertPartition(partition);
    if (!Number.isSafeInteger(epoch) || epoch < 1)
      throw new EventLogError('INVALID_EPOCH', `epoch must be a positive integer, got ${epoch}`);
    const fence = await this.#raiseFence(partition, epoch);
    const state = await stateFrom(this.#events, partition, fence);
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

  async append(partition: number, epoch: number, input: readonly EventInput[]): Promise<AppendResult> {
    assertPartition(partition);
    const known = this.#writers.get(partition);
    if (!known) {
      // Not claimed by this process: learn the head from the fence (never above the truth).
      this.#writers.set(partition, await stateFrom(this.#events, partition, await this.#fences.findOne({ _id: partition })));
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
        ...eventExtras(e),
        ...(e.payload === null ? { tomb: true as const } : {}),
      }));
      let failure: unknown;
      try {
        const r = await this.#events.insertMany(docs, { ordered: true });
        if (r.insertedCount === docs.length) {
          accept(state, docs, appended);
          pending = pending.slice(docs.length);
          continue;
        }
        failure = new EventLogError('CONFLICT', `the server acknowledged ${r.insertedCount} of ${docs.length} inserts`);
      } catch (err) {
        failure = err;
      }
      // Find out exactly what landed before deciding anything.
      const outcome = await settleInsert(this.#events, state, docs, appended);
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
      state.head = await maxSeq(this.#events, partition);
    }
    // Nothing to insert (all duplicates): still refuse a fenced writer.
    if (!checked && input.length > 0) await this.checkFence(partition, epoch);
    return { appended, duplicates, head: state.head };
  }

  async read(range: ReadRange): Promise<LogEvent[]> {
    const after = range.afterSeq ?? 0;
    if (!Number.isSafeInteger(range.partition) || range.partition < 0)
      throw new EventLogError('INVALID_RANGE', 'partition must be a non-negative integer');
    if (!Number.isSafeInteger(after) || after < 0) throw new EventLogError('INVALID_RANGE', 'afterSeq must be a non-negative integer');
    assertLimit(range.limit);
    const seq = range.toSeq === undefined ? { $gt: after } : { $gt: after, $lte: range.toSeq };
    const filter = { ...(range.topic === undefined ? {} : { topic: range.topic }), partition: range.partition, seq };
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
    const seq = fence?.next ? (await stateFrom(this.#events, partition, fence)).head : await maxSeq(this.#events, partition);
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

  async causedBy(id: string, limit: number): Promise<LogEvent[]> {
    assertLimit(limit);
    const docs = await this.#events.find({ causedBy: id }, { sort: { publishedAt: 1 }, limit }).toArray();
    return docs.map(toEvent);
  }

  async present(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    // One id is the common case (a single publish): an `_id` equality every server serves from its index.
    const filter = ids.length === 1 ? { _id: ids[0] as string } : { _id: { $in: [...ids] } };
    const docs = await this.#events.find(filter, { projection: { _id: 1 } }).toArray();
    return new Set(docs.map((d) => d._id));
  }

  async seqBefore(partition: number, at: Date): Promise<number> {
    assertPartition(partition);
    if (Number.isNaN(at.getTime())) throw new EventLogError('INVALID_RANGE', 'at must be a valid date');
    // Served by partition_publishedAt_seq: a seek to the last entry before `at`, whatever the partition's length.
    const d = await this.#events.findOne(
      { partition, publishedAt: { $lt: at } },
      { sort: { publishedAt: -1, seq: -1 }, projection: { _id: 0, seq: 1 } },
    );
    return d?.seq ?? 0;
  }

  findGap(partition: number, afterSeq: number): Promise<SequenceGap | null> {
    return repair.findGap(this.#events, partition, afterSeq);
  }

  async repairGap(partition: number, afterSeq: number, options: { minAgeMs: number }): Promise<SequenceGap | null> {
    const gap = await this.findGap(partition, afterSeq);
    if (!gap) return null;
    await repair.fillGap(this.#events, gap, options);
    return gap;
  }

  reportStall(partition: number, reporter: string, stall: { seq: number; since: Date } | null): Promise<void> {
    return repair.reportStall(this.#stalls, partition, reporter, stall);
  }

  stalls(): Promise<StallReport[]> {
    return repair.readStalls(this.#stalls);
  }

  retention(partition: number): Promise<PartitionRetention> {
    return retention.retentionOf(this.#retention, partition);
  }

  scan(partition: number, afterSeq: number, limit: number): Promise<EventMeta[]> {
    assertPartition(partition);
    assertLimit(limit);
    return retention.scanMeta(this.#retention, partition, afterSeq, limit);
  }

  async sizes(partition: number, afterSeq: number, limit: number): Promise<EventSize[]> {
    assertPartition(partition);
    assertLimit(limit);
    return retention.sizesOf(this.#retention, partition, afterSeq, limit);
  }

  trim(partition: number, epoch: number, first: number, maxDelete: number, taggedBelow = 0): Promise<{ first: number; deleted: number }> {
    assertPartition(partition);
    assertLimit(maxDelete);
    return retention.trimPrefix(this.#retention, partition, epoch, first, maxDelete, taggedBelow);
  }

  compact(partition: number, epoch: number, events: readonly LogEvent[], upTo: number): Promise<void> {
    assertPartition(partition);
    return retention.compactInto(this.#retention, partition, epoch, events, upTo);
  }

  snapshot(filter: TopicPattern, after: SnapshotCursor | undefined, limit: number): Promise<LogEvent[]> {
    assertLimit(limit);
    return retention.snapshotPage(this.#retention, filter, after, limit);
  }

  latestValue(topic: string, key: string): Promise<LogEvent | null> {
    return retention.latestOf(this.#retention, topic, key);
  }

  purgeTombstones(partition: number, before: Date, limit: number): Promise<number> {
    assertLimit(limit);
    return retention.purgeTombstonesOf(this.#retention, partition, before, limit);
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
}
