import { BSON } from 'mongodb';
import { EventLogError, assertLimit, assertPartition, fenced } from './errors.js';
import { MatchTally } from './count.js';
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

/**
 * The state several {@link MemoryEventLog} handles share, as several processes
 * share one database. Each operation is atomic (single-threaded JavaScript).
 */
export class MemoryEventStorage {
  readonly byId = new Map<string, LogEvent>();
  /** Per partition, events by sequence. */
  readonly partitions = new Map<number, Map<number, LogEvent>>();
  readonly heads = new Map<number, number>();
  readonly fences = new Map<number, number>();
  readonly stalls = new Map<string, StallReport>();
  /** Per partition: first retained sequence and snapshot watermark. */
  readonly retention = new Map<number, { first: number; compactedTo: number; lastAppendFrom: number; taggedTo: number }>();
  /** Latest event per `<topic>/<key>` of compacted topics. */
  readonly latest = new Map<string, LogEvent>();

  retentionOf(partition: number): { first: number; compactedTo: number; lastAppendFrom: number; taggedTo: number } {
    let r = this.retention.get(partition);
    if (!r) this.retention.set(partition, (r = { first: 1, compactedTo: 0, lastAppendFrom: 1, taggedTo: 0 }));
    return r;
  }

  slots(partition: number): Map<number, LogEvent> {
    let m = this.partitions.get(partition);
    if (!m) this.partitions.set(partition, (m = new Map<number, LogEvent>()));
    return m;
  }
}

/**
 * {@link EventLog} in memory, for unit tests of code built on the port and as
 * the reference the contract suite holds the database adapters to.
 */
export class MemoryEventLog implements EventLog {
  readonly #s: MemoryEventStorage;

  constructor(storage = new MemoryEventStorage()) {
    this.#s = storage;
  }

  claim(partition: number, epoch: number): Promise<number> {
    return run(() => {
      assertPartition(partition);
      if (!Number.isSafeInteger(epoch) || epoch < 1)
        throw new EventLogError('INVALID_EPOCH', `epoch must be a positive integer, got ${epoch}`);
      if ((this.#s.fences.get(partition) ?? 0) > epoch) throw fenced(partition, epoch);
      this.#s.fences.set(partition, epoch);
      return this.#s.heads.get(partition) ?? 0;
    });
  }

  checkFence(partition: number, epoch: number): Promise<void> {
    return run(() => {
      if ((this.#s.fences.get(partition) ?? 0) > epoch) throw fenced(partition, epoch);
    });
  }

  append(partition: number, epoch: number, input: readonly EventInput[]): Promise<AppendResult> {
    return run(() => {
      assertPartition(partition);
      if ((this.#s.fences.get(partition) ?? 0) > epoch) throw fenced(partition, epoch);
      const appended: LogEvent[] = [];
      const duplicates: string[] = [];
      const slots = this.#s.slots(partition);
      let head = this.#s.heads.get(partition) ?? 0;
      const publishedAt = new Date();
      if (input.some((e) => !this.#s.byId.has(e.id))) this.#s.retentionOf(partition).lastAppendFrom = head + 1;
      for (const e of input) {
        if (this.#s.byId.has(e.id)) {
          duplicates.push(e.id);
          continue;
        }
        const event: LogEvent = { ...e, headers: { ...e.headers }, partition, seq: ++head, publishedAt };
        slots.set(head, event);
        this.#s.byId.set(e.id, event);
        appended.push(event);
      }
      this.#s.heads.set(partition, head);
      return { appended, duplicates, head };
    });
  }

  read(range: ReadRange): Promise<LogEvent[]> {
    return run(() => {
      const after = range.afterSeq ?? 0;
      assertPartition(range.partition);
      if (!Number.isSafeInteger(after) || after < 0) throw new EventLogError('INVALID_RANGE', 'afterSeq must be a non-negative integer');
      assertLimit(range.limit);
      return this.#after(range.partition, after, range.limit, range.topic).filter((e) => range.toSeq === undefined || e.seq <= range.toSeq);
    });
  }

  readAfter(positions: ReadonlyMap<number, number>, limit: number): Promise<LogEvent[]> {
    return run(() => {
      if (positions.size === 0) return [];
      assertLimit(limit);
      const out: LogEvent[] = [];
      for (const [partition, after] of [...positions].sort((a, b) => a[0] - b[0])) {
        if (out.length >= limit) break;
        out.push(...this.#after(partition, after, limit - out.length));
      }
      return out;
    });
  }

  head(partition: number): Promise<PartitionHead> {
    return run(() => ({ seq: this.#s.heads.get(partition) ?? 0, epoch: this.#s.fences.get(partition) ?? 0 }));
  }

  countMatching(queries: readonly MatchQuery[]): Promise<Array<Map<number, MatchCount>>> {
    return run(() => {
      const tally = new MatchTally(queries);
      for (const [partition, ranges] of tally.union()) {
        const slots = this.#s.slots(partition);
        for (const r of ranges) {
          for (let seq = r.afterSeq + 1; seq <= r.toSeq; seq++) {
            const e = slots.get(seq);
            if (e) tally.add(e);
          }
        }
      }
      return tally.results();
    });
  }

  latestByKey(topic: string, key: string): Promise<LogEvent | null> {
    return run(() => {
      let best: LogEvent | null = null;
      // Linear: this adapter is for tests, where logs are small.
      for (const e of this.#s.byId.values()) if (e.topic === topic && e.key === key && (!best || e.seq > best.seq)) best = e;
      return best;
    });
  }

  get(id: string): Promise<LogEvent | null> {
    return run(() => this.#s.byId.get(id) ?? null);
  }

  causedBy(id: string, limit: number): Promise<LogEvent[]> {
    return run(() => {
      assertLimit(limit);
      // Linear: this adapter is for tests, where logs are small.
      const found = [...this.#s.byId.values()].filter((e) => e.causedBy?.includes(id));
      return found.sort((a, b) => a.publishedAt.getTime() - b.publishedAt.getTime()).slice(0, limit);
    });
  }

  present(ids: readonly string[]): Promise<Set<string>> {
    return run(() => new Set(ids.filter((id) => this.#s.byId.has(id))));
  }

  seqBefore(partition: number, at: Date): Promise<number> {
    return run(() => {
      assertPartition(partition);
      if (Number.isNaN(at.getTime())) throw new EventLogError('INVALID_RANGE', 'at must be a valid date');
      // Linear over the partition: this adapter is for tests, where logs are small.
      let best: LogEvent | undefined;
      for (const e of this.#s.slots(partition).values()) {
        if (e.publishedAt.getTime() >= at.getTime()) continue;
        const t = e.publishedAt.getTime() - (best?.publishedAt.getTime() ?? -Infinity);
        if (!best || t > 0 || (t === 0 && e.seq > best.seq)) best = e;
      }
      return best?.seq ?? 0;
    });
  }

  findGap(partition: number, afterSeq: number): Promise<SequenceGap | null> {
    return run(() => this.#gap(partition, afterSeq));
  }

  repairGap(partition: number, afterSeq: number, options: { minAgeMs: number }): Promise<SequenceGap | null> {
    return run(() => {
      const gap = this.#gap(partition, afterSeq);
      if (!gap) return null;
      if (Date.now() - gap.nextPublishedAt.getTime() < options.minAgeMs)
        throw new EventLogError('GAP_TOO_RECENT', 'a write may still be landing');
      const slots = this.#s.slots(partition);
      const now = new Date();
      for (let seq = gap.from; seq <= gap.to; seq++) {
        const filler: LogEvent = {
          id: `gap:${partition}:${seq}`,
          topic: '',
          key: null,
          payload: null,
          headers: {},
          createdAt: now,
          partition,
          seq,
          publishedAt: now,
          gap: true,
        };
        slots.set(seq, filler);
        this.#s.byId.set(filler.id, filler);
      }
      return gap;
    });
  }

  reportStall(partition: number, reporter: string, stall: { seq: number; since: Date } | null): Promise<void> {
    return run(() => {
      const id = `${partition}/${reporter}`;
      if (stall === null) this.#s.stalls.delete(id);
      else this.#s.stalls.set(id, { partition, reporter, seq: stall.seq, since: stall.since, updatedAt: new Date() });
    });
  }

  stalls(): Promise<StallReport[]> {
    return run(() => [...this.#s.stalls.values()].sort((a, b) => a.since.getTime() - b.since.getTime()));
  }

  retention(partition: number): Promise<PartitionRetention> {
    return run(() => {
      const r = this.#s.retentionOf(partition);
      return { first: r.first, compactedTo: r.compactedTo, taggedTo: r.taggedTo };
    });
  }

  scan(partition: number, afterSeq: number, limit: number): Promise<EventMeta[]> {
    return run(() => {
      assertPartition(partition);
      assertLimit(limit);
      return this.#after(partition, afterSeq, limit)
        .filter((e) => e.seq <= afterSeq + limit)
        .map((e) => ({
          seq: e.seq,
          topic: e.topic,
          key: e.key,
          publishedAt: e.publishedAt,
          tombstone: e.payload === null,
          ...(e.tags === undefined ? {} : { tags: e.tags }),
        }));
    });
  }

  sizes(partition: number, afterSeq: number, limit: number): Promise<EventSize[]> {
    return run(() => {
      assertPartition(partition);
      assertLimit(limit);
      // The size the event's document would have in a database (its id as `_id`, as stored there).
      return this.#after(partition, afterSeq, limit)
        .filter((e) => e.seq <= afterSeq + limit)
        .map(({ id, ...rest }) => ({
          seq: rest.seq,
          topic: rest.topic,
          bytes: BSON.calculateObjectSize({ _id: id, ...rest }),
          gap: rest.gap === true,
        }));
    });
  }

  trim(partition: number, epoch: number, first: number, maxDelete: number, taggedBelow = 0): Promise<{ first: number; deleted: number }> {
    return run(() => {
      assertPartition(partition);
      assertLimit(maxDelete);
      if ((this.#s.fences.get(partition) ?? 0) > epoch) throw fenced(partition, epoch);
      const r = this.#s.retentionOf(partition);
      // Never past the first slot of the last append: the sequence continues from there.
      r.first = Math.max(r.first, Math.min(first, r.lastAppendFrom));
      r.taggedTo = Math.max(r.taggedTo, Math.min(taggedBelow, r.first - 1));
      const slots = this.#s.slots(partition);
      let deleted = 0;
      for (const [seq, e] of [...slots].sort((a, b) => a[0] - b[0])) {
        if (seq >= r.first || deleted >= maxDelete) break;
        slots.delete(seq);
        this.#s.byId.delete(e.id);
        // What it deletes it knows: a caller that passed less is corrected here.
        if (e.tags !== undefined && e.tags.length > 0) r.taggedTo = Math.max(r.taggedTo, seq);
        deleted++;
      }
      return { first: r.first, deleted };
    });
  }

  compact(partition: number, epoch: number, events: readonly LogEvent[], upTo: number): Promise<void> {
    return run(() => {
      if ((this.#s.fences.get(partition) ?? 0) > epoch) throw fenced(partition, epoch);
      for (const e of events) {
        if (e.key === null) continue;
        const id = `${e.topic}/${e.key}`;
        const had = this.#s.latest.get(id);
        if (!had || had.seq < e.seq) this.#s.latest.set(id, { ...e, headers: { ...e.headers } });
      }
      const r = this.#s.retentionOf(partition);
      r.compactedTo = Math.max(r.compactedTo, upTo);
    });
  }

  snapshot(filter: TopicPattern, after: SnapshotCursor | undefined, limit: number): Promise<LogEvent[]> {
    return run(() => {
      assertLimit(limit);
      // Sorted on every call: this adapter is for tests, where snapshots are small.
      const all = [...this.#s.latest.values()]
        .filter((e) => filter.matches(e.topic))
        .sort((a, b) => compare(a.topic, b.topic) || compare(a.key ?? '', b.key ?? ''));
      const start = after
        ? all.findIndex((e) => compare(e.topic, after.topic) > 0 || (e.topic === after.topic && compare(e.key ?? '', after.key) > 0))
        : 0;
      return start < 0 ? [] : all.slice(start, start + limit);
    });
  }

  latestValue(topic: string, key: string): Promise<LogEvent | null> {
    return run(() => this.#s.latest.get(`${topic}/${key}`) ?? null);
  }

  purgeTombstones(partition: number, before: Date, limit: number): Promise<number> {
    return run(() => {
      let n = 0;
      for (const [id, e] of this.#s.latest) {
        if (n >= limit) break;
        if (e.partition === partition && e.payload === null && e.publishedAt < before) {
          this.#s.latest.delete(id);
          n++;
        }
      }
      return n;
    });
  }

  /** Test hook: removes an event, leaving a hole (what a broken server or an old version could leave behind). */
  punchHole(partition: number, seq: number): void {
    const e = this.#s.slots(partition).get(seq);
    if (!e) return;
    this.#s.slots(partition).delete(seq);
    this.#s.byId.delete(e.id);
  }

  #after(partition: number, after: number, limit: number, topic?: string): LogEvent[] {
    const slots = this.#s.slots(partition);
    const head = this.#s.heads.get(partition) ?? 0;
    const out: LogEvent[] = [];
    for (let seq = after + 1; seq <= head && out.length < limit; seq++) {
      const e = slots.get(seq);
      if (e && (topic === undefined || e.topic === topic)) out.push(e);
    }
    return out;
  }

  #gap(partition: number, afterSeq: number): SequenceGap | null {
    const slots = this.#s.slots(partition);
    const head = this.#s.heads.get(partition) ?? 0;
    let seq = afterSeq + 1;
    while (seq <= head && !slots.has(seq)) seq++;
    if (seq === afterSeq + 1 || seq > head) return null;
    return { partition, from: afterSeq + 1, to: seq - 1, nextPublishedAt: (slots.get(seq) as LogEvent).publishedAt };
  }
}

/** Code-unit order, as the database sorts strings. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Runs `fn` as an async operation: errors become rejections, like a database adapter's. */
function run<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}
