import type { EventReader, MatchCount, SeqRange } from '../eventlog/index.js';
import { groupLeaseGroup, type GroupStore } from '../groupstore/index.js';
import type { LeaseStore } from '../lease/index.js';
import { TopicPattern } from '../topic/index.js';

/**
 * How many sequences past a group cursor one sample looks at, per partition.
 * Beyond it the lag is extrapolated from what matched within it (and marked
 * estimated): a sample's work stays bounded however far behind a group is.
 */
export const LAG_WINDOW = 1_000;

/** Groups whose state (cursors, gateways, dead letters) is read at the same time. */
const CONCURRENCY = 4;

/** Lag of one group partition. */
export interface GroupPartitionRow {
  partition: number;
  cursor: number;
  head: number;
  /** Events after the cursor that match the group's filter (estimated beyond {@link LAG_WINDOW}). */
  lagEvents: number;
  /** False when `lagEvents` was extrapolated. */
  lagExact: boolean;
  /** Age of the oldest matching event after the cursor. */
  lagSeconds: number;
}

/** A consumer group as one sample saw it. */
export interface GroupView {
  group: string;
  filter: string;
  /**
   * Tags the group's events carry, when it has any. Lag counts the events of its filter:
   * for a group with tags an upper bound (the events it passes over count too).
   */
  tags?: string[];
  /** Gateways that serve members of the group now (0: nobody consumes it). */
  gateways: number;
  lagEvents: number;
  lagExact: boolean;
  maxLagSeconds: number;
  deadLetters: number;
  partitions: GroupPartitionRow[];
}

/** The ports group lag is computed from. */
export interface GroupLagPorts {
  groups: GroupStore;
  log: Pick<EventReader, 'countMatching'>;
  leases: LeaseStore;
}

interface GroupState {
  group: string;
  filter: string;
  tags: readonly string[] | undefined;
  everything: boolean;
  cursors: Map<number, number>;
  ranges: Map<number, SeqRange>;
  gateways: number;
  deadLetters: number;
}

/**
 * Computes each registered group's lag by its own filter: per partition, the
 * events after the group's cursor whose topic the filter matches, and how old
 * the first of them is. One sample costs, per group, its cursors, its gateways
 * and its dead-letter count, plus one read of the log for all groups together,
 * bounded by {@link LAG_WINDOW} per partition and group (none when every group
 * is at the head).
 */
export class GroupLag {
  readonly #p: GroupLagPorts;

  constructor(ports: GroupLagPorts) {
    this.#p = ports;
  }

  /** Every registered group (at most `limit`), against the partition heads given. */
  async sample(heads: readonly number[], limit: number, now = Date.now()): Promise<GroupView[]> {
    const registry = await this.#p.groups.listGroups(limit);
    const states: GroupState[] = [];
    for (let i = 0; i < registry.length; i += CONCURRENCY) {
      const slice = registry.slice(i, i + CONCURRENCY);
      states.push(...(await Promise.all(slice.map((g) => this.#state(g.name, g.filter, g.tags, heads)))));
    }
    const counted = await this.#p.log.countMatching(states.map((g) => ({ ranges: g.ranges, filter: TopicPattern.compile(g.filter) })));
    return states.map((g, i) => view(g, heads, counted[i] ?? new Map<number, MatchCount>(), now));
  }

  async #state(group: string, filter: string, tags: readonly string[] | undefined, heads: readonly number[]): Promise<GroupState> {
    const [cursors, gateways, deadLetters] = await Promise.all([
      this.#p.groups.loadCursors(group),
      this.#p.leases.members(groupLeaseGroup(group)),
      this.#p.groups.countDeadLetters(group),
    ]);
    const pattern = TopicPattern.compile(filter);
    // `**` matches every event: its lag is the distance to the head; only the first event's age is read.
    const everything = pattern.segments.length === 1 && pattern.segments[0] === '**';
    const ranges = new Map<number, SeqRange>();
    heads.forEach((head, partition) => {
      const cursor = cursors.get(partition) ?? 0;
      if (head > cursor) ranges.set(partition, { afterSeq: cursor, toSeq: Math.min(head, cursor + (everything ? 1 : LAG_WINDOW)) });
    });
    return {
      group,
      filter,
      tags,
      everything,
      cursors,
      ranges,
      gateways: gateways.length,
      deadLetters,
    };
  }
}

function view(g: GroupState, heads: readonly number[], counted: ReadonlyMap<number, MatchCount>, now: number): GroupView {
  const partitions = heads.map((head, partition): GroupPartitionRow => {
    const cursor = g.cursors.get(partition) ?? 0;
    const range = g.ranges.get(partition);
    const m = counted.get(partition);
    const behind = Math.max(0, head - cursor);
    const seen = range ? range.toSeq - range.afterSeq : 0;
    const exact = g.everything || behind === seen;
    const matched = m?.count ?? 0;
    return {
      partition,
      cursor,
      head,
      lagEvents: g.everything ? behind : exact ? matched : Math.round((matched * behind) / Math.max(1, seen)),
      lagExact: exact,
      lagSeconds: m ? Math.max(0, (now - m.firstPublishedAt.getTime()) / 1000) : 0,
    };
  });
  return {
    group: g.group,
    filter: g.filter,
    ...(g.tags === undefined ? {} : { tags: [...g.tags] }),
    gateways: g.gateways,
    lagEvents: partitions.reduce((n, p) => n + p.lagEvents, 0),
    lagExact: partitions.every((p) => p.lagExact),
    maxLagSeconds: Math.max(0, ...partitions.map((p) => p.lagSeconds)),
    deadLetters: g.deadLetters,
    partitions,
  };
}
