import { DRAINER_LEASE_GROUP } from '../drainer/index.js';
import type { EventLogRepair, EventLogRetention, EventReader, LogEvent, SequenceGap, StallReport } from '../eventlog/index.js';
import { GATEWAY_PRESENCE_GROUP } from '../gateway/index.js';
import { groupLeaseGroup, type DeadLetter, type GroupStore } from '../groupstore/index.js';
import type { LeaseStore, Member } from '../lease/index.js';
import type { OutboxStore, StoredMessage } from '../outbox/index.js';
import { GroupLag, type GroupView } from './groups.js';
import { RetentionWalk, type TopicRetentionRow } from './retention-walk.js';

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

/** What one partition still holds (retention), as a sample saw it. */
export interface RetentionRow {
  partition: number;
  /** First sequence still held (lower ones were trimmed). */
  first: number;
  /** Last sequence (the head). */
  last: number;
  /** Events between them (what is held, holes aside). */
  retained: number;
  /** Events trimmed so far (the sequences below `first`). */
  trimmed: number;
  /** Age of the first event still held (0 when the partition is empty). */
  oldestAgeSeconds: number;
  /** Events up to here are in the latest-value snapshot of compacted topics. */
  compactedTo: number;
  /** No event with tags above this sequence was trimmed (tagged groups coming back decide on it). */
  taggedTo: number;
  /** Stored size of the events held (BSON), as far as counted (see `countedTo`). */
  bytes: number;
  /** Events up to this sequence are counted in `bytes` and the topic figures (below `last`: catching up). */
  countedTo: number;
  /** Whether `bytes` (and this partition's share of the topic figures) is exact: caught up, nothing pro-rated. */
  exact: boolean;
}

/** What the sampler last saw: partition heads, consumer groups and replicas. */
export interface Snapshot {
  at: Date;
  heads: number[];
  retention: RetentionRow[];
  /** What the log holds per topic (most bytes first), counted like the partitions' `bytes`. */
  topics: TopicRetentionRow[];
  groups: GroupView[];
  /** Replicas that stopped heartbeating without leaving within {@link LAPSED_WINDOW_MS}. */
  lapsed: { drainers: Member[]; gateways: Member[] };
  /** How long taking this sample took. */
  tookMs: number;
}

/** Replicas that stopped without leaving are reported for this long. */
export const LAPSED_WINDOW_MS = 60 * 60_000;

/** The ports ops reads and administers through (built by the composition root from the configured backends). */
export interface OpsPorts {
  readonly outboxStore: OutboxStore;
  readonly eventLog: EventReader & EventLogRepair & Pick<EventLogRetention, 'retention' | 'latestValue' | 'sizes'>;
  readonly leases: LeaseStore;
  readonly groupStore: GroupStore;
}

/**
 * The read models behind the ops API. Every query is keyed by partition (and
 * sequence), `_id` or a small registry, so index-backed on MongoDB (FerretDB
 * scans for every query; see the README), and nothing loads a collection into
 * memory. What costs more than a few lookups (group lag by
 * filter, lapsed replicas) and rates come from a sample taken on an interval
 * ({@link sample}) and kept in memory: requests never wait for it, and its
 * cost does not grow with how many requests come in.
 */
export class OpsQueries {
  readonly #partitions: number;
  readonly #outbox: OutboxStore;
  readonly #log: EventReader & EventLogRepair & Pick<EventLogRetention, 'retention' | 'latestValue' | 'sizes'>;
  readonly #leases: LeaseStore;
  readonly #groups: GroupStore;
  readonly #lag: GroupLag;
  readonly #walk: RetentionWalk;
  readonly #samples: Array<{ at: number; heads: number[] }> = [];
  #snapshot: Snapshot | undefined;

  /** The ports themselves, for the admin use cases beside these queries (group resets, positions: admin-routes.ts). */
  readonly ports: OpsPorts;

  constructor(ports: OpsPorts, partitions: number) {
    this.ports = ports;
    this.#partitions = partitions;
    this.#outbox = ports.outboxStore;
    this.#log = ports.eventLog;
    this.#leases = ports.leases;
    this.#groups = ports.groupStore;
    this.#lag = new GroupLag({ groups: this.#groups, log: this.#log, leases: this.#leases });
    this.#walk = new RetentionWalk(this.#log);
  }

  #range(): number[] {
    return Array.from({ length: this.#partitions }, (_, p) => p);
  }

  /** Takes a sample: partition heads (for rates), every group's lag, lapsed replicas. Called on an interval. */
  async sample(): Promise<Snapshot> {
    const started = Date.now();
    const heads = await this.#heads();
    this.#samples.push({ at: started, heads });
    if (this.#samples.length > SAMPLES) this.#samples.shift();
    const [groups, drainers, gateways, retention] = await Promise.all([
      this.#lag.sample(heads, MAX_GROUPS),
      this.#leases.lapsed(DRAINER_LEASE_GROUP, LAPSED_WINDOW_MS),
      this.#leases.lapsed(GATEWAY_PRESENCE_GROUP, LAPSED_WINDOW_MS),
      this.#retention(heads, started),
    ]);
    this.#snapshot = {
      at: new Date(started),
      heads,
      retention,
      topics: this.#walk.topics(),
      groups,
      lapsed: { drainers, gateways },
      tookMs: Date.now() - started,
    };
    return this.#snapshot;
  }

  /**
   * Per partition: where it starts now, and how old its first event is (two lookups per
   * partition, index-backed), and what it holds in bytes and per topic (the walk: bounded
   * range reads of what was appended or trimmed since the last sample).
   */
  async #retention(heads: number[], now: number): Promise<RetentionRow[]> {
    return Promise.all(
      this.#range().map(async (partition) => {
        const { first, compactedTo, taggedTo } = await this.#log.retention(partition);
        const last = heads[partition] ?? 0;
        const [[oldest], figures] = await Promise.all([
          last >= first ? this.#log.read({ partition, afterSeq: first - 1, limit: 1, toSeq: last }) : Promise.resolve([]),
          this.#walk.update(partition, first, last),
        ]);
        return {
          partition,
          first,
          last,
          retained: Math.max(0, last - first + 1),
          trimmed: first - 1,
          oldestAgeSeconds: oldest ? Math.max(0, (now - oldest.publishedAt.getTime()) / 1000) : 0,
          compactedTo,
          taggedTo,
          ...figures,
        };
      }),
    );
  }

  /** The last sample (taken once before the API answers). */
  get snapshot(): Snapshot | undefined {
    return this.#snapshot;
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

  /** Heads and rates per partition as of sample `snap`. */
  partitions(snap: Snapshot): Array<{ partition: number; head: number; ratePerSecond: number }> {
    const rates = this.#rates();
    return snap.heads.map((head, partition) => ({
      partition,
      head,
      ratePerSecond: Number((rates[partition] ?? 0).toFixed(2)),
    }));
  }

  /**
   * Deletes a consumer group and its state, refused (`active`) while a gateway
   * serves members of it (they would write its cursors again); `absent` when no
   * such group exists.
   */
  async deleteGroup(group: string): Promise<'deleted' | 'absent' | 'active'> {
    if ((await this.#leases.members(groupLeaseGroup(group))).length > 0) return 'active';
    const existed = await this.#groups.deleteGroup(group);
    if (this.#snapshot) this.#snapshot = { ...this.#snapshot, groups: this.#snapshot.groups.filter((g) => g.group !== group) };
    return existed ? 'deleted' : 'absent';
  }

  /** The latest event of a key: from the latest-value snapshot (compacted topics), else the log. */
  async latest(topic: string, key: string): Promise<LogEvent | null> {
    return (await this.#log.latestValue(topic, key)) ?? (await this.#log.latestByKey(topic, key));
  }

  /** One event by id (an `_id` lookup). */
  event(id: string): Promise<LogEvent | null> {
    return this.#log.get(id);
  }

  /** Events that name `id` among their causes, oldest first (one range of the `causedBy` index). */
  causedBy(id: string, limit: number): Promise<LogEvent[]> {
    return this.#log.causedBy(id, limit);
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
