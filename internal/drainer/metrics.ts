import { Counter, Gauge, Histogram, type Registry } from '../telemetry/index.js';

/** The drainer's metrics, registered on the binary's own registry. */
export interface DrainerMetrics {
  published: Counter;
  duplicates: Counter;
  commitToPublish: Histogram;
  pending: Gauge<'partition'>;
  oldestPendingAge: Gauge<'partition'>;
  deadMessages: Gauge<'partition'>;
  partitionsOwned: Gauge;
  leaseAcquisitions: Counter;
  leaseLosses: Counter;
  fenced: Counter;
  batchErrors: Counter<'kind'>;
  deadLettered: Counter;
  claimSeconds: Histogram;
  leaseRenewSeconds: Histogram;
  retentionTrimmed: Counter<'partition'>;
  retentionFirst: Gauge<'partition'>;
  retentionForced: Counter<'group'>;
  retentionBehind: Gauge<'partition'>;
  retentionRoundSeconds: Histogram;
}

/** The kinds of failed drain batches (`outbox_batch_errors_total{kind}`). */
const BATCH_ERROR_KINDS = ['transient', 'permanent'] as const;

/**
 * Registers the drainer metrics on `registry`. Labelled counters start at 0 for
 * their known label values: a series that first appears already at 1 is
 * invisible to `rate()` and `increase()`.
 */
export function createDrainerMetrics(registry: Registry): DrainerMetrics {
  const metrics = registerDrainerMetrics(registry);
  for (const kind of BATCH_ERROR_KINDS) metrics.batchErrors.inc({ kind }, 0);
  return metrics;
}

function registerDrainerMetrics(registry: Registry): DrainerMetrics {
  const registers = [registry];
  return {
    published: new Counter({ name: 'outbox_published_total', help: 'Messages appended to the event log', registers }),
    duplicates: new Counter({
      name: 'outbox_duplicates_total',
      help: 'Messages found already in the event log (no second append)',
      registers,
    }),
    commitToPublish: new Histogram({
      name: 'outbox_commit_to_publish_seconds',
      help: 'Time from outbox write to event-log append',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    pending: new Gauge({
      name: 'outbox_pending_messages',
      help: 'Pending outbox messages per owned partition',
      labelNames: ['partition'],
      registers,
    }),
    oldestPendingAge: new Gauge({
      name: 'outbox_oldest_pending_age_seconds',
      help: 'Age of the oldest pending message per owned partition',
      labelNames: ['partition'],
      registers,
    }),
    deadMessages: new Gauge({
      name: 'outbox_dead_messages',
      help: 'Dead outbox messages per owned partition',
      labelNames: ['partition'],
      registers,
    }),
    partitionsOwned: new Gauge({ name: 'outbox_partitions_owned', help: 'Partitions this drainer holds a lease on', registers }),
    leaseAcquisitions: new Counter({ name: 'outbox_lease_acquisitions_total', help: 'Partition leases acquired', registers }),
    leaseLosses: new Counter({ name: 'outbox_lease_losses_total', help: 'Partition leases lost without releasing', registers }),
    fenced: new Counter({ name: 'outbox_fenced_total', help: 'Appends refused because a newer epoch holds the partition', registers }),
    batchErrors: new Counter({ name: 'outbox_batch_errors_total', help: 'Failed drain batches by kind', labelNames: ['kind'], registers }),
    deadLettered: new Counter({ name: 'outbox_dead_lettered_total', help: 'Messages moved to dead after repeated failures', registers }),
    claimSeconds: new Histogram({
      name: 'outbox_claim_seconds',
      help: 'Time to claim a partition (raise its fence, read its head) after taking its lease',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    retentionTrimmed: new Counter({
      name: 'outbox_retention_trimmed_total',
      help: 'Events trimmed from the log by retention, per partition',
      labelNames: ['partition'],
      registers,
    }),
    retentionFirst: new Gauge({
      name: 'outbox_retention_first_seq',
      help: 'First sequence a partition still holds (lower ones were trimmed), per held partition',
      labelNames: ['partition'],
      registers,
    }),
    retentionForced: new Counter({
      name: 'outbox_retention_forced_total',
      help: 'Retention rounds that trimmed events a consumer group had not acked (a keepForGroups hard cap), per group',
      labelNames: ['group'],
      registers,
    }),
    retentionBehind: new Gauge({
      name: 'outbox_retention_behind',
      help: 'Per held partition: 1 when its last retention round ran out of budget with expired events left to trim, else 0',
      labelNames: ['partition'],
      registers,
    }),
    retentionRoundSeconds: new Histogram({
      name: 'outbox_retention_round_seconds',
      help: 'Time one retention round of one partition took',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    leaseRenewSeconds: new Histogram({
      name: 'outbox_lease_renew_seconds',
      help: 'Time one lease renewal round (heartbeat and every held lease) took',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
  };
}
