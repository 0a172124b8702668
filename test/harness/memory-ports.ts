/**
 * An in-memory stand-in for the log ports consumer groups depend on but do not
 * test here: the event log's range read and the log tail. It lets group delivery
 * logic (and its benchmark) run without a database; the group store and the
 * lease store are the real in-memory adapters.
 */
import type { LogEvent, ReadRange } from '../../internal/eventlog/index.js';
import { createGatewayMetrics } from '../../internal/gateway/index.js';
import { GroupManager, type GroupLogReader, type GroupSettings, type GroupTail } from '../../internal/groups/index.js';
import { MemoryGroupStore } from '../../internal/groupstore/index.js';
import { MemoryLeaseStore } from '../../internal/lease/index.js';
import { createLogger } from '../../internal/log/index.js';
import { createRegistry } from '../../internal/telemetry/index.js';

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
  readonly #taggedTo = new Map<number, number>();
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

  /**
   * Drops the events of `partition` below `first`, as retention does, recording `taggedTo` as
   * the highest trimmed sequence with tags (default: as a log that does not know, all of them).
   */
  trim(partition: number, first: number, taggedTo = first - 1): void {
    this.#first.set(partition, Math.max(first, this.#first.get(partition) ?? 1));
    this.#taggedTo.set(partition, Math.max(taggedTo, this.#taggedTo.get(partition) ?? 0));
  }

  retention(partition: number): Promise<{ first: number; compactedTo: number; taggedTo: number }> {
    return Promise.resolve({ first: this.#first.get(partition) ?? 1, compactedTo: 0, taggedTo: this.#taggedTo.get(partition) ?? 0 });
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

/**
 * A consumer-group manager (one gateway) over `log`, with the in-memory group and lease stores
 * (pass the same ones to put several gateways on one "database") and short timings for tests.
 */
export function memoryGroupManager(
  log: MemoryLog,
  options: { store?: MemoryGroupStore; leases?: MemoryLeaseStore; settings?: Partial<GroupSettings> } = {},
): GroupManager {
  return new GroupManager({
    eventLog: log,
    tail: log,
    leases: options.leases ?? new MemoryLeaseStore(),
    store: options.store ?? new MemoryGroupStore(),
    log: createLogger({ level: 'error' }),
    metrics: createGatewayMetrics(createRegistry('test')),
    settings: {
      partitions: 2,
      instance: 'gw-test',
      ackTimeoutMs: 10_000,
      maxDeliveries: 3,
      redeliveryBaseMs: 10,
      leaseTtlMs: 10_000,
      leaseRenewMs: 1_000,
      cursorFlushMs: 20,
      ...options.settings,
    },
  });
}
