import type { LogEvent } from '../eventlog/index.js';
import type { GroupPartition } from './partition.js';
import type { GroupMember } from './types.js';

/** A member as its group tracks it. */
export class Slot {
  readonly member: GroupMember;
  inFlight = 0;
  /** Takes deliveries (set by {@link GroupMembership.activate}). */
  active = false;
  /** In the group's ring of members with spare capacity. */
  queued = false;
  gone = false;
  /** Its deliveries in flight, by event id. */
  readonly deliveries = new Map<string, Delivery>();

  constructor(member: GroupMember) {
    this.member = member;
  }
}

export interface Delivery {
  readonly event: LogEvent;
  readonly partition: GroupPartition;
  slot: Slot | undefined;
  deliveries: number;
  timer: NodeJS.Timeout | undefined;
  /** A dead letter an operator asked to deliver again. */
  readonly replay: boolean;
  /** Not yet sent once (counts toward the read-ahead). */
  fresh: boolean;
}
