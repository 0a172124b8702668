import { OutboxError } from './errors.js';
import {
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_PARTITIONS,
  assertPartitions,
  partitionOf,
  validateMessage,
  type OutboxMessageInput,
} from './message.js';
import type { OutboxStore, PartitionBacklog, PendingMessage, StoredMessage } from './store.js';

/**
 * {@link OutboxStore} in memory, with an `add` that plays the application's
 * writer: for unit tests of the drainer and as the reference the contract suite
 * holds the MongoDB adapter to.
 */
export class MemoryOutboxStore implements OutboxStore {
  readonly partitions: number;
  /** Per partition, pending messages by id; kept in `ts` order (writes append with a growing ts). */
  readonly #pending: Array<Map<string, PendingMessage>>;
  readonly #dead = new Map<string, StoredMessage>();
  readonly #listeners = new Set<(partition: number) => void>();
  #lastTs = 0;

  constructor(options: { partitions?: number } = {}) {
    this.partitions = options.partitions ?? DEFAULT_PARTITIONS;
    assertPartitions(this.partitions);
    this.#pending = Array.from({ length: this.partitions }, () => new Map<string, PendingMessage>());
  }

  /** Writes messages as {@link Outbox.addMany} would (validated first, all or nothing). */
  add(messages: ReadonlyArray<OutboxMessageInput>): Promise<PendingMessage[]> {
    try {
      const now = Date.now();
      const valid = messages.map((m, i) => validateMessage(m, i, DEFAULT_MAX_PAYLOAD_BYTES, now));
      const seen = new Set<string>();
      valid.forEach((m, index) => {
        const p = partitionOf(m.key ?? m.id, this.partitions);
        if (seen.has(m.id) || this.#pending[p]?.has(m.id) || this.#dead.has(m.id))
          throw new OutboxError('DUPLICATE_ID', `id ${m.id} is taken`, { index });
        seen.add(m.id);
      });
      const added = valid.map((m) => {
        const partition = partitionOf(m.key ?? m.id, this.partitions);
        const msg: PendingMessage = { ...m, partition, createdAt: new Date(now), attempts: 0, ts: this.#nextTs() };
        this.#pending[partition]?.set(m.id, msg);
        return msg;
      });
      for (const m of added) for (const l of this.#listeners) l(m.partition);
      return Promise.resolve(added);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  pending(partition: number, limit: number): Promise<PendingMessage[]> {
    const out: PendingMessage[] = [];
    for (const m of this.#partition(partition).values()) {
      if (out.length >= limit) break;
      out.push({ ...m });
    }
    return Promise.resolve(out);
  }

  remove(partition: number, messages: readonly PendingMessage[]): Promise<number> {
    const p = this.#partition(partition);
    let n = 0;
    for (const m of messages) if (p.delete(m.id)) n++;
    return Promise.resolve(n);
  }

  recordFailure(message: PendingMessage, error: string, dead: boolean): Promise<void> {
    const p = this.#partition(message.partition);
    const m = p.get(message.id);
    if (!m) return Promise.resolve();
    m.attempts++;
    if (dead) {
      p.delete(m.id);
      this.#dead.set(m.id, { ...m, status: 'dead', lastError: error.slice(0, 2000), diedAt: new Date() });
    }
    return Promise.resolve();
  }

  requeue(ids: readonly string[]): Promise<number> {
    let n = 0;
    for (const id of ids) {
      const d = this.#dead.get(id);
      if (!d) continue;
      this.#dead.delete(id);
      const m: PendingMessage = { ...d, attempts: 0, ts: this.#nextTs() };
      delete (m as Partial<StoredMessage>).status;
      delete (m as Partial<StoredMessage>).lastError;
      delete (m as Partial<StoredMessage>).diedAt;
      this.#partition(d.partition).set(id, m);
      for (const l of this.#listeners) l(d.partition);
      n++;
    }
    return Promise.resolve(n);
  }

  backlog(partition: number): Promise<PartitionBacklog> {
    const p = this.#partition(partition);
    const first = p.values().next();
    let dead = 0;
    for (const d of this.#dead.values()) if (d.partition === partition) dead++;
    return Promise.resolve({ pending: p.size, oldestPendingAt: first.done ? null : first.value.createdAt, dead });
  }

  get(id: string, partition?: number): Promise<StoredMessage | null> {
    const dead = this.#dead.get(id);
    if (dead) return Promise.resolve({ ...dead });
    const where = partition === undefined ? this.#pending.map((_, p) => p) : [partition];
    for (const p of where) {
      const m = this.#pending[p]?.get(id);
      if (m) return Promise.resolve({ ...m, status: 'pending', lastError: null, diedAt: null });
    }
    return Promise.resolve(null);
  }

  listDead(partition: number, limit: number): Promise<StoredMessage[]> {
    return Promise.resolve(
      [...this.#dead.values()]
        .filter((d) => d.partition === partition)
        .slice(0, limit)
        .map((d) => ({ ...d })),
    );
  }

  watchPending(onPartition: (partition: number) => void): () => Promise<void> {
    this.#listeners.add(onPartition);
    return () => {
      this.#listeners.delete(onPartition);
      return Promise.resolve();
    };
  }

  #partition(partition: number): Map<string, PendingMessage> {
    const p = this.#pending[partition];
    if (!p) throw new RangeError(`partition ${partition} is outside 0..${this.partitions - 1}`);
    return p;
  }

  #nextTs(): number {
    this.#lastTs = Math.max(this.#lastTs + 1, Date.now() * 1000);
    return this.#lastTs;
  }
}
