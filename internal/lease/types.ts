/** A held lease on one partition of a group. */
export interface Lease {
  readonly group: string;
  readonly partition: number;
  readonly holder: string;
  /** Bumped on every change of holder; fences writes of earlier holders. */
  readonly epoch: number;
  readonly expiresAt: Date;
}

/** A live member of a group, as its last heartbeat said. */
export interface Member {
  readonly group: string;
  readonly member: string;
  readonly expiresAt: Date;
}

/**
 * The lease port. Adapters: MongoDB, Kubernetes `coordination.k8s.io/v1` and in memory.
 *
 * Invariants every adapter keeps (checked by the contract suite):
 * - at most one unexpired holder per (group, partition);
 * - `acquire` succeeds only on a free or expired lease and bumps the epoch;
 * - an epoch of a partition is handed out at most once, even to racing claimants;
 * - `renew` and `release` succeed only for the same holder and epoch;
 * - epochs of a partition only grow.
 */
export interface LeaseStore {
  /** Takes a free or expired lease. Returns null when someone else holds it. */
  acquire(group: string, partition: number, holder: string, ttlMs: number): Promise<Lease | null>;
  /** Extends a held lease. Returns null when it was lost (a new epoch exists). */
  renew(lease: Lease, ttlMs: number): Promise<Lease | null>;
  /** Gives a lease up so another member can take it at once. No-op when already lost. */
  release(lease: Lease): Promise<void>;
  /** Every lease record of `group`, held or not. */
  list(group: string): Promise<Lease[]>;
  /** Records that `member` is alive for another `ttlMs`. */
  heartbeat(group: string, member: string, ttlMs: number): Promise<void>;
  /** Members whose heartbeat has not expired. */
  members(group: string): Promise<Member[]>;
  /**
   * Members whose heartbeat expired less than `withinMs` ago and who never left:
   * replicas that crashed, were killed or were cut off from the store.
   */
  lapsed(group: string, withinMs: number): Promise<Member[]>;
  leave(group: string, member: string): Promise<void>;
}
