import type { LogEvent } from '../eventlog/index.js';
import {
  MAX_REASON_LENGTH,
  checkCursor,
  checkStart,
  normalTags,
  type DeadLetter,
  type DeliveryState,
  type GroupRecord,
  type GroupStore,
} from './types.js';

/**
 * A deep copy of stored data (plain objects, arrays, dates, primitives). Not
 * structuredClone: that makes objects of the host realm, which differ from a
 * sandbox's (jest) and so would not pass for what a database driver returns.
 */
function copy<T>(value: T): T {
  if (value instanceof Date) return new Date(value.getTime()) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => copy(v)) as T;
  if (typeof value === 'object' && value !== null) {
    // fromEntries defines own properties: a payload key named __proto__ stays a key.
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, copy(v)])) as T;
  }
  return value;
}

/** Runs `f` as a store call: a throw becomes a rejection, as with a database adapter. */
function call<T>(f: () => T): Promise<T> {
  return new Promise((resolve) => resolve(f()));
}

interface Recorded {
  partition: number;
  seq: number;
  deliveries: number;
}

interface Cursor {
  /** Undefined until the first cursor save (a delivered mark may come first). */
  seq: number | undefined;
  epoch: number;
  delivered: number;
}

/**
 * {@link GroupStore} in process memory: for unit tests of group delivery logic
 * and benchmarks without a database. Not shared between processes and lost on
 * exit, so never a production adapter. Values are copied in and out, as a
 * database would, so callers cannot alias stored state.
 */
export class MemoryGroupStore implements GroupStore {
  readonly #groups = new Map<string, GroupRecord>();
  /** group -> partition -> cursor */
  readonly #cursors = new Map<string, Map<number, Cursor>>();
  /** group -> event id -> recorded deliveries */
  readonly #deliveries = new Map<string, Map<string, Recorded>>();
  /** group -> event id -> dead letter (insertion order is kept by Map) */
  readonly #dead = new Map<string, Map<string, DeadLetter>>();

  register(
    group: string,
    filter: string,
    start: ReadonlyMap<number, number> = new Map(),
    tags: readonly string[] = [],
  ): Promise<GroupRecord> {
    return call(() => {
      checkStart(start);
      const wanted = normalTags(tags);
      let g = this.#groups.get(group);
      if (!g) {
        g = Object.freeze({
          name: group,
          filter,
          ...(wanted.length === 0 ? {} : { tags: Object.freeze(wanted) }),
          createdAt: new Date(),
          start: new Map(start),
        });
        this.#groups.set(group, g);
      }
      return this.#record(g);
    });
  }

  #record(g: GroupRecord): GroupRecord {
    return {
      name: g.name,
      filter: g.filter,
      ...(g.tags === undefined ? {} : { tags: [...g.tags] }),
      createdAt: new Date(g.createdAt.getTime()),
      start: new Map(g.start),
    };
  }

  listGroups(limit: number): Promise<GroupRecord[]> {
    const names = [...this.#groups.keys()].sort().slice(0, limit);
    return Promise.resolve(names.map((n) => this.#record(this.#groups.get(n) as GroupRecord)));
  }

  getGroup(group: string): Promise<GroupRecord | null> {
    const g = this.#groups.get(group);
    return Promise.resolve(g ? this.#record(g) : null);
  }

  loadCursor(group: string, partition: number): Promise<number> {
    const saved = this.#cursors.get(group)?.get(partition)?.seq;
    return Promise.resolve(saved ?? this.#groups.get(group)?.start.get(partition) ?? 0);
  }

  loadCursors(group: string): Promise<Map<number, number>> {
    const out = new Map(this.#groups.get(group)?.start ?? []);
    for (const [p, c] of this.#cursors.get(group) ?? []) if (c.seq !== undefined) out.set(p, c.seq);
    return Promise.resolve(out);
  }

  saveCursor(group: string, partition: number, seq: number, epoch: number): Promise<boolean> {
    return call(() => {
      checkCursor(partition, seq, epoch);
      return this.#fenced(group, partition, epoch, (c) => (c.seq = seq));
    });
  }

  markDelivered(group: string, partition: number, seq: number, epoch: number): Promise<boolean> {
    return call(() => {
      checkCursor(partition, seq, epoch);
      return this.#fenced(group, partition, epoch, (c) => (c.delivered = Math.max(c.delivered, seq)));
    });
  }

  /** Applies `change` to a partition's cursor unless a newer epoch owns it; false when fenced. */
  #fenced(group: string, partition: number, epoch: number, change: (c: Cursor) => void): boolean {
    let cursors = this.#cursors.get(group);
    if (!cursors) this.#cursors.set(group, (cursors = new Map<number, Cursor>()));
    let c = cursors.get(partition);
    if (c && c.epoch > epoch) return false;
    if (!c) cursors.set(partition, (c = { seq: undefined, epoch, delivered: 0 }));
    c.epoch = epoch;
    change(c);
    return true;
  }

  recordDeliveries(group: string, partition: number, eventId: string, seq: number, deliveries: number): Promise<void> {
    return call(() => {
      checkCursor(partition, seq, deliveries);
      let byEvent = this.#deliveries.get(group);
      if (!byEvent) this.#deliveries.set(group, (byEvent = new Map<string, Recorded>()));
      const before = byEvent.get(eventId)?.deliveries ?? 0;
      byEvent.set(eventId, { partition, seq, deliveries: Math.max(before, deliveries) });
    });
  }

  loadDeliveries(group: string, partition: number, afterSeq: number): Promise<DeliveryState> {
    const counts = new Map<string, number>();
    for (const [id, d] of this.#deliveries.get(group) ?? [])
      if (d.partition === partition && d.seq > afterSeq) counts.set(id, d.deliveries);
    return Promise.resolve({ deliveredUpTo: this.#cursors.get(group)?.get(partition)?.delivered ?? 0, counts });
  }

  forgetDeliveries(group: string, partition: number, seq: number): Promise<void> {
    const byEvent = this.#deliveries.get(group);
    for (const [id, d] of byEvent ?? []) if (d.partition === partition && d.seq <= seq) byEvent?.delete(id);
    return Promise.resolve();
  }

  deadLetter(group: string, event: LogEvent, deliveries: number, reason: string): Promise<void> {
    let dead = this.#dead.get(group);
    if (!dead) this.#dead.set(group, (dead = new Map<string, DeadLetter>()));
    // Re-inserting moves it to the end, matching the database's order by deadAt.
    dead.delete(event.id);
    dead.set(event.id, {
      group,
      event: copy(event),
      deliveries,
      reason: reason.slice(0, MAX_REASON_LENGTH),
      status: 'dead',
      deadAt: new Date(),
    });
    return Promise.resolve();
  }

  #waiting(group: string): DeadLetter[] {
    return [...(this.#dead.get(group)?.values() ?? [])].filter((d) => d.status === 'dead' || d.status === 'replay');
  }

  listDeadLetters(group: string, limit: number): Promise<DeadLetter[]> {
    return Promise.resolve(copy(this.#waiting(group).slice(0, limit)));
  }

  countDeadLetters(group: string): Promise<number> {
    return Promise.resolve(this.#waiting(group).length);
  }

  requestReplay(group: string, eventId: string): Promise<boolean> {
    const d = this.#dead.get(group)?.get(eventId);
    if (d?.status !== 'dead') return Promise.resolve(false);
    d.status = 'replay';
    return Promise.resolve(true);
  }

  takeReplays(group: string, partition: number, limit: number): Promise<DeadLetter[]> {
    const taken: DeadLetter[] = [];
    for (const d of this.#dead.get(group)?.values() ?? []) {
      if (taken.length >= limit) break;
      if (d.status !== 'replay' || d.event.partition !== partition) continue;
      d.status = 'replayed';
      taken.push({ ...copy(d), deliveries: 0 });
    }
    return Promise.resolve(taken);
  }

  deleteGroup(group: string): Promise<boolean> {
    const existed = this.#groups.delete(group);
    this.#cursors.delete(group);
    this.#deliveries.delete(group);
    this.#dead.delete(group);
    return Promise.resolve(existed);
  }

  resolveReplay(group: string, eventId: string, acked: boolean): Promise<void> {
    const dead = this.#dead.get(group);
    const d = dead?.get(eventId);
    if (!dead || !d) return Promise.resolve();
    if (acked) {
      if (d.status === 'replayed') dead.delete(eventId);
    } else {
      d.status = 'dead';
      d.deadAt = new Date();
      dead.delete(eventId);
      dead.set(eventId, d);
    }
    return Promise.resolve();
  }
}
