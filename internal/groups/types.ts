import type { Counter, Gauge } from '../telemetry/index.js';
import type { EventLogRetention, LogEvent, ReadRange } from '../eventlog/index.js';
import type { GroupStore } from '../groupstore/index.js';
import type { Health } from '../health/index.js';
import type { LeaseStore } from '../lease/index.js';
import type { Logger } from '../log/index.js';

/** A subscription that is a member of a consumer group. */
export interface GroupMember {
  readonly id: string;
  readonly maxInFlight: number;
  /**
   * Sends one delivery; false when the member can no longer receive. `replay`: an
   * operator's replay of a dead letter (its count starts again at 1).
   */
  send(event: LogEvent, delivery: number, replay?: boolean): boolean;
  /** Tells the member its group skipped a trimmed prefix: `partition` now starts at `firstSeq`. */
  trimmed?(partition: number, firstSeq: number): void;
}

/**
 * A member's place in its group, returned by {@link GroupManager.join}. A
 * delivery can be settled only through the membership it was delivered to.
 */
export interface GroupMembership {
  /** Starts deliveries to this member: call it once the member can take them (after the SUBSCRIBE's OK is sent). */
  activate(): void;
  /** Acknowledges a delivery made to this member; false when it holds no such delivery. */
  ack(eventId: string): boolean;
  /** Refuses a delivery made to this member (redelivered after `delayMs` or the backoff); false when it holds no such delivery. */
  nack(eventId: string, delayMs: number | undefined): boolean;
  /** Leaves the group; deliveries still held go to other members at once. Idempotent. */
  leave(): Promise<void>;
}

/** Settings the groups share. */
export interface GroupSettings {
  partitions: number;
  instance: string;
  ackTimeoutMs: number;
  maxDeliveries: number;
  redeliveryBaseMs: number;
  leaseTtlMs: number;
  leaseRenewMs: number;
  cursorFlushMs: number;
}

/** What groups read the log through (the event log port's range read, and where a partition starts). */
export interface GroupLogReader extends Pick<EventLogRetention, 'retention'> {
  read(range: ReadRange): Promise<LogEvent[]>;
}

/** Called with the events a tail read announced. */
export type TailListener = (events: readonly LogEvent[]) => void;

/** What groups follow the log through (the process's log tail). */
export interface GroupTail {
  /** Sequence up to which new events have been announced, per partition. */
  position(partition: number): number;
  listen(listener: TailListener): () => void;
}

/** The metrics groups keep (the gateway's registry provides them). */
export interface GroupMetrics {
  readonly redeliveries: Counter<'group'>;
  readonly deadLetters: Counter<'group'>;
  readonly consumerLag: Gauge<'group' | 'partition'>;
  /** Trimmed prefixes a group skipped (its cursor was below the partition's first retained event). */
  readonly trimmedSkips?: Counter<'group'>;
}

/** Ports and settings of a {@link GroupManager}. */
export interface GroupDeps {
  eventLog: GroupLogReader;
  leases: LeaseStore;
  store: GroupStore;
  tail: GroupTail;
  log: Logger;
  metrics: GroupMetrics;
  settings: GroupSettings;
  /** Watchdogs for each group's lease loops (optional for tests that need none). */
  health?: Health;
}
