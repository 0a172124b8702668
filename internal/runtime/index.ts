/**
 * The composition root: the one place that turns configuration into running
 * parts, used by every binary (drainer, gateway, ops, demo), the benchmarks and
 * the test harness.
 *
 * Invariants:
 * - Shared settings (database, partitions, lease backend) are read by
 *   {@link readHubSettings} with the same rule in every binary, and lease
 *   timings by {@link readLeaseTiming} (a renewal at most every TTL/2).
 * - Adapters are chosen only in {@link openHubPorts}: no binary constructs a
 *   storage or lease adapter itself, so the configured lease backend is the one
 *   every binary uses (ops included).
 * - {@link HubProcess} owns the process set-up: health, telemetry, the database
 *   and its probe, and a stop in reverse order of opening.
 */
export { readHubSettings, readLeaseTiming, readMemberId, type HubSettings, type LeaseTiming } from './settings.js';
export { openHubPorts, type HubPorts, type OpenPortsOptions } from './ports.js';
export { HubProcess, type ProcessDeps } from './process.js';
