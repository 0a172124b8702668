/**
 * Ops: the operators' API and dashboard (reached with kubectl port-forward).
 *
 * Invariants: every endpoint is index-backed (partition-keyed or by id) and
 * bounded; parameters are validated for type and range before any query, so no
 * operator object reaches the database; mutations need OPS_ADMIN_TOKEN.
 */
export { OpsApp } from './app.js';
export { loadOpsConfig, type OpsConfig } from './config.js';
export { OpsError, type OpsErrorCode } from './params.js';
export { OpsQueries } from './queries.js';
