/**
 * The ops API's answers as a client sees them over HTTP (times are ISO
 * strings). The command line is a client of the API like the dashboard, so it
 * keeps its own view of the wire shapes instead of importing the server's types.
 */
import { formatAge } from './time.js';

export interface Member {
  group: string;
  member: string;
  expiresAt: string;
}

export interface BacklogRow {
  partition: number;
  pending: number;
  oldestPendingAgeSeconds: number;
  dead: number;
}

export interface GroupPartitionRow {
  partition: number;
  cursor: number;
  head: number;
  lagEvents: number;
  lagExact: boolean;
  lagSeconds: number;
}

export interface GroupView {
  group: string;
  filter: string;
  /** Tags the group's events must carry (absent: none, every event of the filter). */
  tags?: string[];
  gateways: number;
  lagEvents: number;
  lagExact: boolean;
  maxLagSeconds: number;
  deadLetters: number;
  partitions?: GroupPartitionRow[];
}

export interface Overview {
  at: string;
  sampledAt: string;
  partitions: number;
  backlog: { pending: number; dead: number; oldestPendingAgeSeconds: number; byPartition: BacklogRow[] };
  leases: {
    partitions: Array<{ partition: number; holder: string | null; epoch: number; expiresAt: string | null; live: boolean }>;
    drainers: Member[];
    gateways: Member[];
  };
  lapsed: { drainers: Member[]; gateways: Member[] };
  unownedPartitions: number[];
  throughputPerSecond: number;
  partitionHeads: Array<{ partition: number; head: number; ratePerSecond: number }>;
  stalledPartitions: Array<{ partition: number; seq: number; since: string; reporter: string; gap: { from: number; to: number } | null }>;
  groupDeadLetters: number;
  groups: GroupView[];
}

export interface WireEvent {
  id: string;
  topic: string;
  key: string | null;
  partition: number;
  seq: number;
  payload: unknown;
  headers: Record<string, string>;
  createdAt: string;
  publishedAt: string;
}

export interface DeadMessage {
  id: string;
  topic: string;
  key: string | null;
  partition: number;
  payload: unknown;
  headers: Record<string, string>;
  createdAt: string;
  attempts: number;
  status: 'pending' | 'dead';
  lastError: string | null;
  diedAt: string | null;
}

export interface GroupDeadLetter {
  group: string;
  event: WireEvent;
  deliveries: number;
  reason: string;
  status: 'dead' | 'replay' | 'replayed';
  deadAt: string;
}

export interface DeadLetters {
  outbox: DeadMessage[];
  groups: Array<{ group: string; letters: GroupDeadLetter[] }>;
}

export interface Positions {
  at: string;
  positions: Record<string, number>;
}

export interface ResetAnswer {
  group: string;
  to: string;
  forced: boolean;
  partitions: Array<{ partition: number; previous: number; cursor: number; fenced: boolean }>;
}

/**
 * What is wrong, as the dashboard's headline says it (internal/ops/page.ts
 * computes the same list in the browser): no drainer, unowned partitions,
 * replicas that stopped without leaving, an old backlog, dead messages and
 * letters, stalled partitions, lagging groups and groups nobody consumes.
 */
export function problems(o: Overview, now: Date = new Date()): string[] {
  const out: string[] = [];
  const gone = (ms: Member[]): string =>
    ms.map((m) => `${m.member}, ${formatAge((now.getTime() - Date.parse(m.expiresAt)) / 1000)} ago`).join('; ');
  if (o.leases.drainers.length === 0) out.push('no drainer alive');
  if (o.unownedPartitions.length > 0) out.push(`${o.unownedPartitions.length} partitions without a drainer`);
  if (o.lapsed.drainers.length > 0)
    out.push(`${o.lapsed.drainers.length} drainer(s) stopped without leaving in the last hour (${gone(o.lapsed.drainers)})`);
  if (o.lapsed.gateways.length > 0)
    out.push(`${o.lapsed.gateways.length} gateway(s) stopped without leaving in the last hour (${gone(o.lapsed.gateways)})`);
  if (o.backlog.oldestPendingAgeSeconds > 60) out.push(`oldest pending ${formatAge(o.backlog.oldestPendingAgeSeconds)}`);
  if (o.backlog.dead > 0) out.push(`${o.backlog.dead} dead messages`);
  if (o.groupDeadLetters > 0) out.push(`${o.groupDeadLetters} group dead letters`);
  if (o.stalledPartitions.length > 0) out.push(`${o.stalledPartitions.length} log partitions stalled behind a missing sequence`);
  const lagging = o.groups.filter((g) => g.maxLagSeconds > 60);
  if (lagging.length > 0) out.push(`lagging: ${lagging.map((g) => g.group).join(', ')}`);
  const orphaned = o.groups.filter((g) => g.gateways === 0 && g.lagEvents > 0);
  if (orphaned.length > 0) out.push(`no consumers: ${orphaned.map((g) => g.group).join(', ')}`);
  return out;
}
