/**
 * Partition leases with fencing epochs, and the coordinator that shares a
 * group's partitions among live members.
 *
 * Invariants: see {@link LeaseStore} (one holder, epochs only grow, renew and
 * release need the same holder and epoch) and {@link PartitionCoordinator}
 * (fair share ceil(P / members), only surplus moves, stop releases everything).
 * The epoch of a lease is the fencing token downstream writers must present.
 */
export type { Lease, LeaseStore, Member } from './types.js';
export { MongoLeaseStore, migrateLeases, DEFAULT_LEASE_COLLECTIONS, type LeaseCollections } from './mongo.js';
export { PartitionCoordinator, type CoordinatorHandlers, type CoordinatorMetrics, type CoordinatorOptions } from './coordinator.js';
