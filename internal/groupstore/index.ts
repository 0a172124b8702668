/**
 * Durable consumer-group state behind one port, {@link GroupStore}: the group
 * registry, fenced per-partition cursors, delivery counts (so another gateway
 * continues them after a failover) and dead letters. The gateway delivers
 * through it and ops reads and replays through it; nobody else touches its
 * collections.
 *
 * Adapters: {@link MongoGroupStore} (production) and {@link MemoryGroupStore}
 * (unit tests and benchmarks). Both pass the contract suite in
 * test/contract/groups.ts.
 *
 * Invariants: see {@link GroupStore}. Group partitions are shared between
 * gateways through the lease group {@link groupLeaseGroup}(name); the cursor
 * epoch is that lease's epoch.
 */
export {
  GroupStoreError,
  MAX_GROUP_TAGS,
  MAX_REASON_LENGTH,
  normalTags,
  type DeadLetter,
  type DeliveryState,
  type GroupRecord,
  type GroupStore,
  type GroupStoreErrorCode,
} from './types.js';
export { DEFAULT_GROUP_COLLECTIONS, MongoGroupStore, migrateGroups, type GroupCollections } from './mongo.js';
export { MemoryGroupStore } from './memory.js';

/** Prefix of the lease groups that share consumer-group partitions among gateways. */
export const GROUP_LEASE_PREFIX = 'group:';

/** The lease group whose leases own the partitions of consumer group `name`. */
export function groupLeaseGroup(name: string): string {
  return `${GROUP_LEASE_PREFIX}${name}`;
}
