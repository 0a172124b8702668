/**
 * Ops: the operators' API and dashboard (reached with kubectl port-forward).
 *
 * Invariants: every endpoint is index-backed (partition-keyed or by id) and
 * bounded; what costs more (each group's lag by its filter, replicas that
 * stopped without leaving) comes from a sample taken every OPS_SAMPLE_INTERVAL,
 * whose reads of the log are bounded per partition by LAG_WINDOW, so no request
 * waits for it and its cost does not grow with the number of requests;
 * parameters are validated for type and range before any query, so no operator
 * object reaches the database; mutations need OPS_ADMIN_TOKEN.
 */
export { OpsApp } from './app.js';
export { loadOpsConfig, type OpsConfig } from './config.js';
export { GroupLag, LAG_WINDOW, type GroupLagPorts, type GroupPartitionRow, type GroupView } from './groups.js';
export { OpsMetrics } from './metrics.js';
export { OpsError, type OpsErrorCode } from './params.js';
export { OpsQueries, type Snapshot } from './queries.js';
