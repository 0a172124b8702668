import type { Db } from 'mongodb';
import { DRAINER_LEASE_GROUP } from '../drainer/index.js';
import { MongoEventLog, type LogEvent, type SequenceGap, type StallReport } from '../eventlog/index.js';
import { GATEWAY_PRESENCE_GROUP } from '../gateway/index.js';
import { MongoGroupStore, type DeadLetter, type GroupStore } from '../groupstore/index.js';
import { MongoLeaseStore, type Member } from '../lease/index.js';
import { MongoOutboxStore, type StoredMessage } from '../outbox/index.js';

/** Most groups listed. */
const MAX_GROUPS = 1000;
/** Head samples kept for rates (with the default 5 s interval: one minute). */
const SAMPLES = 13;

/** Backlog of one outbox partition. */
export interface BacklogRow {
  partition: number;
  pending: number;
  oldestPendingAgeSeconds: number;
  dead: number;
}

/** Lag of one group partition. */
export interface GroupPartitionRow {
  partition: number;
  cursor: number;
  head: number;
  lagEvents: number;
  lagSeconds: number;
}

/**
 * The read models behind the ops API. Every query is index-backed (partition
 * keyed, `_id`, or small registries): nothing scans the event log or loads a
 * collection into memory. Rates come from head samples kept in memory.
 */
export class OpsQueries {
  readonly #partitions: number;
  readonly #outbox: MongoOutboxStore;
  readonly #log: MongoEventLog;
  readonly #leases: MongoLeaseStore;
  readonly #groups: GroupStore;
  readonly #samples: Array<{ at: number; heads: number[] }> = [];

  constructor(db: Db, partitions: number) {
    this.#partitions = partitions;
    this.#outbox = new MongoOutboxStore(db, { partitions });
    this.#log = new MongoEventLog(db);
    this.#leases = new MongoLeaseStore(db);
    this.#groups = new MongoGroupStore(db);
  }

  #range(): number[] {
    return Array.from({ length: this.#partitions }, (_, p) => p);
  }

  /** Records one sample of every partition head (called on an interval). */
  async sample(): Promise<void> {
    const heads = await this.#heads();
    this.#samples.push({ at: Date.now(), heads });
    if (this.#samples.length > SAMPLES) this.#samples.shift();
  }

  #rates(): number[] {
    const first = this.#samples[0];
    const last = this.#samples.at(-1);
    if (!first || !last || last.at === first.at) return this.#range().map(() => 0);
    const seconds = (last.at - first.at) / 1000;
    return this.#range().map((p) => Math.max(0, ((last.heads[p] ?? 0) - (first.heads[p] ?? 0)) / seconds));
  }

  async backlog(): Promise<BacklogRow[]> {
    const now = Date.now();
    return Promise.all(
      this.#range().map(async (partition) => {
        const b = await this.#outbox.backlog(partition);
        return {
          partition,
          pending: b.pending,
          dead: b.dead,
          oldestPendingAgeSeconds: b.oldestPendingAt ? Math.max(0, (now - b.oldestPendingAt.getTime()) / 1000) : 0,
        };
      }),
    );
  }

  async leases(): Promise<{
    partitions: Array<{ partition: number; holder: string | null; epoch: number; expiresAt: Date | null; live: boolean }>;
    drainers: Member[];
    gateways: Member[];
  }> {
    const [list, drainers, gateways] = await Promise.all([
      this.#leases.list(DRAINER_LEASE_GROUP),
      this.#leases.members(DRAINER_LEASE_GROUP),
      this.#leases.members(GATEWAY_PRESENCE_GROUP),
    ]);
    const byPartition = new Map(list.map((l) => [l.partition, l]));
    const now = Date.now();
    const partitions = this.#range().map((partition) => {
      const l = byPartition.get(partition);
      const live = !!l && l.holder !== '' && l.expiresAt.getTime() > now;
      return { partition, holder: live && l ? l.holder : null, epoch: l?.epoch ?? 0, expiresAt: live && l ? l.expiresAt : null, live };
    });
    return { partitions, drainers, gateways };
  }

  async #heads(): Promise<number[]> {
    return Promise.all(this.#range().map(async (p) => (await this.#log.head(p)).seq));
  }

  /** Heads and rates per partition; pass `heads` already read in this request to skip reading them again. */
  async partitions(heads?: number[]): Promise<Array<{ partition: number; head: number; ratePerSecond: number }>> {
    const rates = this.#rates();
    const seqs = heads ?? (await this.#heads());
    return seqs.map((head, partition) => ({ partition, head, ratePerSecond: Number((rates[partition] ?? 0).toFixed(2)) }));
  }

  /** Names of the registered consumer groups (a small registry, read whole on purpose, bounded). */
  async groupNames(): Promise<Array<{ group: string; filter: string }>> {
    const registry = await this.#groups.listGroups(MAX_GROUPS);
    return registry.map((g) => ({ group: g.name, filter: g.filter }));
  }

  /** Groups with cursor, lag in events and seconds per partition, and dead-letter counts. */
  async groups(
    heads?: number[],
  ): Promise<Array<{ group: string; filter: string; deadLetters: number; lagEvents: number; partitions: GroupPartitionRow[] }>> {
    const [registry, seqs] = await Promise.all([this.groupNames(), heads ?? this.#heads()]);
    const now = Date.now();
    return Promise.all(
      registry.map(async ({ group, filter }) => {
        const cursors = await this.#groups.loadCursors(group);
        const partitions = await Promise.all(
          this.#range().map(async (partition): Promise<GroupPartitionRow> => {
            const cursor = cursors.get(partition) ?? 0;
            const head = seqs[partition] ?? 0;
            let lagSeconds = 0;
            if (head > cursor) {
              const [next] = await this.#log.read({ partition, afterSeq: cursor, limit: 1 });
              if (next) lagSeconds = Math.max(0, (now - next.publishedAt.getTime()) / 1000);
            }
            return { partition, cursor, head, lagEvents: Math.max(0, head - cursor), lagSeconds };
          }),
        );
        const deadLetters = await this.#groups.countDeadLetters(group);
        return { group, filter, deadLetters, lagEvents: partitions.reduce((n, p) => n + p.lagEvents, 0), partitions };
      }),
    );
  }

  /** Head of every partition, for callers that need it more than once per request. */
  heads(): Promise<number[]> {
    return this.#heads();
  }

  latest(topic: string, key: string): Promise<LogEvent | null> {
    return this.#log.latestByKey(topic, key);
  }

  range(partition: number, afterSeq: number, limit: number, topic?: string): Promise<LogEvent[]> {
    return this.#log.read({ partition, afterSeq, limit, ...(topic === undefined ? {} : { topic }) });
  }

  head(partition: number): Promise<number> {
    return this.#log.head(partition).then((h) => h.seq);
  }

  async deadOutbox(limitPerPartition: number): Promise<StoredMessage[]> {
    const lists = await Promise.all(this.#range().map((p) => this.#outbox.listDead(p, limitPerPartition)));
    return lists.flat();
  }

  outboxMessage(id: string): Promise<StoredMessage | null> {
    return this.#outbox.get(id);
  }

  requeue(id: string): Promise<number> {
    return this.#outbox.requeue([id]);
  }

  /**
   * Readers' reports of partitions stalled behind a missing sequence, each with
   * the gap as it is now (null once it filled). Reports not refreshed for
   * `staleMs` (their reader is gone) are left out.
   */
  async stalls(staleMs: number): Promise<Array<StallReport & { gap: SequenceGap | null }>> {
    const now = Date.now();
    const reports = (await this.#log.stalls()).filter((r) => now - r.updatedAt.getTime() < staleMs);
    return Promise.all(reports.map(async (r) => ({ ...r, gap: await this.#log.findGap(r.partition, r.seq - 1) })));
  }

  /** Fills the hole right after `afterSeq` with filler events (see {@link EventLog.repairGap}). */
  repairGap(partition: number, afterSeq: number, minAgeMs: number): Promise<SequenceGap | null> {
    return this.#log.repairGap(partition, afterSeq, { minAgeMs });
  }

  deadGroupLetters(group: string, limit: number): Promise<DeadLetter[]> {
    return this.#groups.listDeadLetters(group, limit);
  }

  replay(group: string, eventId: string): Promise<boolean> {
    return this.#groups.requestReplay(group, eventId);
  }
}
