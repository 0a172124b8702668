/**
 * The drainer: moves outbox messages into the event log, in order per
 * partition (hence per key) and exactly once.
 *
 * Invariants:
 * - A partition is drained only under a lease; every append presents the
 *   lease epoch, so a paused or partitioned former holder is fenced.
 * - Per batch: one read, one append, one status update.
 * - A message that keeps failing moves to `dead` with its last error and stops
 *   blocking its partition. Trade-off: later messages of the same key overtake
 *   it; requeueing it appends it after them.
 * - SIGTERM: finish the batch, release leases, exit; others take over at once.
 * - Retention (when policies are set) runs beside the workers and gives way to
 *   their batches ({@link DrainTraffic}).
 */
export { Drainer, DRAINER_LEASE_GROUP, type DrainerDeps } from './drainer.js';
export { DrainerApp } from './app.js';
export { DRAINER_DEFAULTS, loadDrainerConfig, type DrainerConfig } from './config.js';
export { createDrainerMetrics, type DrainerMetrics } from './metrics.js';
export { DrainTraffic } from './traffic.js';
