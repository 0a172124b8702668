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
 *
 * Retention figures: per partition, first and last sequence, events held and trimmed and
 * the oldest event's age are exact as of the sample (index lookups). Bytes held (BSON size
 * of the stored documents) and events and bytes per topic come from {@link RetentionWalk}:
 * the sampler reads the log forward as it grows, at most WALK_BUDGET events per partition
 * per sample, and keeps the sums in bounded blocks, so they are exact once it has caught up
 * (`exact` per partition) except for a pro-rated block on very long partitions; per-topic
 * trimmed counts are what this ops process saw trimmed since it started. Topics beyond
 * MAX_TOPICS are summed as OTHER_TOPICS; metrics carry the TOPIC_METRICS topics with the most bytes.
 */
export { OpsApp } from './app.js';
export { loadOpsConfig, type OpsConfig } from './config.js';
export { GroupLag, LAG_WINDOW, type GroupLagPorts, type GroupPartitionRow, type GroupView } from './groups.js';
export { OpsMetrics, TOPIC_METRICS } from './metrics.js';
export { OpsError, type OpsErrorCode } from './params.js';
export { OpsQueries, type RetentionRow, type Snapshot } from './queries.js';
export { MAX_TOPICS, OTHER_TOPICS, RetentionWalk, WALK_BUDGET, type PartitionFigures, type TopicRetentionRow } from './retention-walk.js';
