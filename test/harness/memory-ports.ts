/**
 * An in-memory stand-in for the log ports consumer groups depend on but do not
 * test here: the event log's range read and the log tail. It lets group delivery
 * logic (and its benchmark) run without a database; the group store and the
 * lease store are the real in-memory adapters.
 */
import type { LogEvent, ReadRange } from '../../internal/eventlog/index.js';
import type { GroupLogReader, GroupTail } from '../../internal/groups/index.js';

type Listener = (events: readonly LogEvent[]) => void;

/** What {@link MemoryLog.publish} takes. */
export interface MemoryEventInput {
  id?: string;
  topic: string;
  key?: string | null;
  payload?: unknown;
  partition: number;
  tags?: string[];
}

/** A partitioned log with gap-free sequences that announces appends to its listeners at once, as the tail would. */
export class MemoryLog implements GroupLogReader, GroupTail {
  readonly #partitions = new Map<number, LogEvent[]>();
  readonly #listeners = new Set<Listener>();
  /** First retained sequence per partition (1 unless {@link trim} moved it). */
  readonly #first = new Map<number, number>();
  #ids = 0;

  /** Appends events (in order) and announces them in one batch. */
  publish(inputs: readonly MemoryEventInput[]): LogEvent[] {
    const now = new Date();
    const out = inputs.map((m) => {
      let list = this.#partitions.get(m.partition);
      if (!list) this.#partitions.set(m.partition, (list = []));
      const e: LogEvent = {
        id: m.id ?? `e${++this.#ids}`,
        topic: m.topic,
        key: m.key ?? null,
        payload: m.payload ?? null,
        headers: {},
        createdAt: now,
        publishedAt: now,
        partition: m.partition,
        seq: list.length + 1,
        ...(m.tags === undefined ? {} : { tags: m.tags }),
      };
      list.push(e);
      return e;
    });
    for (const l of this.#listeners) l(out);
    return out;
  }

  /** Drops the events of `partition` below `first`, as retention does. */
  trim(partition: number, first: number): void {
    this.#first.set(partition, Math.max(first, this.#first.get(partition) ?? 1));
  }

  retention(partition: number): Promise<{ first: number; compactedTo: number }> {
    return Promise.resolve({ first: this.#first.get(partition) ?? 1, compactedTo: 0 });
  }

  read(range: ReadRange): Promise<LogEvent[]> {
    const list = this.#partitions.get(range.partition) ?? [];
    const from = Math.max(range.afterSeq ?? 0, (this.#first.get(range.partition) ?? 1) - 1);
    return Promise.resolve(list.slice(from, from + range.limit).filter((e) => range.topic === undefined || e.topic === range.topic));
  }

  position(partition: number): number {
    return this.#partitions.get(partition)?.length ?? 0;
  }

  listen(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
