/**
 * Event-log retention: policies per topic pattern (maximum age, maximum events
 * per partition, a default), compacted topics whose latest value per key is
 * kept in a snapshot, and interest retention that holds trimming at consumer
 * groups' cursors up to hard caps (an event past a group's cursor is held only if
 * the group wants it: its filter, and all of its tags; see {@link GroupInterest}).
 * The drainer that holds a partition's lease trims it under its epoch
 * ({@link RetentionKeeper}), recording with each trim the highest trimmed sequence
 * that carried tags, so readers are told where a partition now starts, and a tagged
 * reader is not told of trimmed events it never wanted.
 *
 * Invariants: policies are read once per binary ({@link readRetention}) and
 * validated before anything starts; without policies nothing is trimmed; a
 * trim removes a prefix of one partition and never the slots of its last
 * append; see {@link RetentionKeeper} for the rest.
 */
export { RetentionError, type RetentionErrorCode } from './errors.js';
export { MAX_POLICIES, RetentionPolicies, type RetentionPolicy } from './policy.js';
export { readRetention } from './settings.js';
export {
  BUSY_DELETE_BATCH,
  DELETE_BATCH,
  RetentionKeeper,
  SCAN_BUDGET,
  type AppendTraffic,
  type GroupInterest,
  type RetentionLog,
  type RetentionMetrics,
  type RoundOutcome,
} from './keeper.js';
