import { EventLogError, assertLimit, assertPartition, fenced } from './errors.js';
import { MatchTally } from './count.js';
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
      return this.#after(range.partition, after, range.limit, range.topic);
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

  present(ids: readonly string[]): Promise<Set<string>> {
    return run(() => new Set(ids.filter((id) => this.#s.byId.has(id))));
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

/** Runs `fn` as an async operation: errors become rejections, like a database adapter's. */
function run<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}
