/**
 * Consumer groups: the delivery engine behind group subscriptions, independent
 * of any transport. It reads the log through {@link GroupLogReader} and
 * {@link GroupTail}, keeps its state in a GroupStore, shares partitions with
 * other processes through a LeaseStore, and hands deliveries to members
 * ({@link GroupMember.send}); the gateway adapts members to its connections.
 *
 * Invariants:
 * - At least once, in order per key: a key's next event waits until the
 *   previous one is acked or dead-lettered; each event goes to one member.
 * - A delivery is settled only through the membership it went to.
 * - A group partition is served by the process holding its lease; cursors and
 *   delivered marks are fenced by the lease epoch.
 * - An event that may have reached a member before arrives with `delivery > 1`,
 *   on whichever process delivers it.
 * - A member that can no longer receive leaves its group at once; its
 *   deliveries go to the others. Cost per event is O(1) in members and partitions.
 */
export { GroupError, type GroupErrorCode } from './errors.js';
export { Fifo } from './fifo.js';
export { GroupManager } from './manager.js';
export type {
  GroupDeps,
  GroupLogReader,
  GroupMember,
  GroupMembership,
  GroupMetrics,
  GroupSettings,
  GroupTail,
  TailListener,
} from './types.js';
