/**
 * In-memory stand-ins for the ports consumer groups depend on but do not test
 * here: the event log's range read, the log tail and the lease store. They let
 * group delivery logic (and its benchmark) run without a database; the group
 * store itself is the real in-memory adapter. The lease stand-in passes the
 * LeaseStore contract suite (test/lease.memory.test.ts), so it behaves as the
 * real adapters do.
 */
import type { LogEvent, ReadRange } from '../../internal/eventlog/index.js';
import type { GroupLogReader, GroupTail } from '../../internal/gateway/index.js';
import type { Lease, LeaseStore, Member } from '../../internal/lease/index.js';

type Listener = (events: readonly LogEvent[]) => void;

/** What {@link MemoryLog.publish} takes. */
export interface MemoryEventInput {
  id?: string;
  topic: string;
  key?: string | null;
  payload?: unknown;
  partition: number;
}

/** A partitioned log with gap-free sequences that announces appends to its listeners at once, as the tail would. */
export class MemoryLog implements GroupLogReader, GroupTail {
  readonly #partitions = new Map<number, LogEvent[]>();
  readonly #listeners = new Set<Listener>();
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
      };
      list.push(e);
      return e;
    });
    for (const l of this.#listeners) l(out);
    return out;
  }

  read(range: ReadRange): Promise<LogEvent[]> {
    const list = this.#partitions.get(range.partition) ?? [];
    const from = range.afterSeq ?? 0;
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

interface LeaseRow {
  holder: string;
  epoch: number;
  expiresAt: number;
}

/** A {@link LeaseStore} in memory (one process), with the same compare-and-set rules as the real adapters. */
export class MemoryLeaseStore implements LeaseStore {
  readonly #leases = new Map<string, Map<number, LeaseRow>>();
  readonly #members = new Map<string, Map<string, number>>();

  #row(group: string, partition: number): LeaseRow | undefined {
    return this.#leases.get(group)?.get(partition);
  }

  #lease(group: string, partition: number, r: LeaseRow): Lease {
    return Object.freeze({ group, partition, holder: r.holder, epoch: r.epoch, expiresAt: new Date(r.expiresAt) });
  }

  acquire(group: string, partition: number, holder: string, ttlMs: number): Promise<Lease | null> {
    const now = Date.now();
    const r = this.#row(group, partition);
    if (r && r.holder !== '' && r.expiresAt > now) return Promise.resolve(null);
    const next = { holder, epoch: (r?.epoch ?? 0) + 1, expiresAt: now + ttlMs };
    let g = this.#leases.get(group);
    if (!g) this.#leases.set(group, (g = new Map<number, LeaseRow>()));
    g.set(partition, next);
    return Promise.resolve(this.#lease(group, partition, next));
  }

  renew(lease: Lease, ttlMs: number): Promise<Lease | null> {
    const r = this.#row(lease.group, lease.partition);
    if (!r || r.holder !== lease.holder || r.epoch !== lease.epoch || r.expiresAt <= Date.now()) return Promise.resolve(null);
    r.expiresAt = Date.now() + ttlMs;
    return Promise.resolve(this.#lease(lease.group, lease.partition, r));
  }

  release(lease: Lease): Promise<void> {
    const r = this.#row(lease.group, lease.partition);
    if (r && r.holder === lease.holder && r.epoch === lease.epoch) {
      r.holder = '';
      r.expiresAt = 0;
    }
    return Promise.resolve();
  }

  list(group: string): Promise<Lease[]> {
    const g = this.#leases.get(group) ?? new Map<number, LeaseRow>();
    return Promise.resolve([...g].sort(([a], [b]) => a - b).map(([p, r]) => this.#lease(group, p, r)));
  }

  heartbeat(group: string, member: string, ttlMs: number): Promise<void> {
    let g = this.#members.get(group);
    if (!g) this.#members.set(group, (g = new Map<string, number>()));
    g.set(member, Date.now() + ttlMs);
    return Promise.resolve();
  }

  members(group: string): Promise<Member[]> {
    const now = Date.now();
    const g = this.#members.get(group) ?? new Map<string, number>();
    return Promise.resolve(
      [...g]
        .filter(([, at]) => at > now)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([member, at]) => Object.freeze({ group, member, expiresAt: new Date(at) })),
    );
  }

  leave(group: string, member: string): Promise<void> {
    this.#members.get(group)?.delete(member);
    return Promise.resolve();
  }
}
