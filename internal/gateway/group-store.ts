import type { Collection, Db } from 'mongodb';
import type { LogEvent } from '../eventlog/index.js';
import { ensureIndexes, isDuplicateKeyError } from '../mongo/index.js';
import { GatewayError } from './errors.js';

/** A group event that exhausted its deliveries. */
export interface DeadLetter {
  group: string;
  event: LogEvent;
  deliveries: number;
  reason: string;
  status: 'dead' | 'replay' | 'replayed';
  deadAt: Date;
}

/**
 * Durable state of consumer groups: topic filter, cursor per partition (fenced
 * by the group lease epoch) and dead letters.
 */
export interface GroupStore {
  /** Records the group's filter; `GROUP_MISMATCH` when it exists with another. */
  register(group: string, filter: string): Promise<void>;
  loadCursor(group: string, partition: number): Promise<number>;
  /** Every saved cursor of a group, by partition (one index-backed query). */
  loadCursors(group: string): Promise<Map<number, number>>;
  /** Saves the acked prefix; false when a newer epoch owns the cursor (we are fenced). */
  saveCursor(group: string, partition: number, seq: number, epoch: number): Promise<boolean>;
  deadLetter(group: string, event: LogEvent, deliveries: number, reason: string): Promise<void>;
  listDeadLetters(group: string, limit: number): Promise<DeadLetter[]>;
  /** Asks the partition's owner to deliver a dead letter again. False when there is no such dead letter. */
  requestReplay(group: string, eventId: string): Promise<boolean>;
  /** Replays requested for one partition, marked as taken. */
  takeReplays(group: string, partition: number, limit: number): Promise<DeadLetter[]>;
  resolveReplay(group: string, eventId: string, acked: boolean): Promise<void>;
}

interface GroupDoc {
  _id: string;
  filter: string;
  createdAt: Date;
}
interface CursorDoc {
  _id: string;
  group: string;
  partition: number;
  seq: number;
  epoch: number;
  updatedAt: Date;
}
interface DeadDoc {
  _id: string;
  group: string;
  partition: number;
  eventId: string;
  event: LogEvent;
  deliveries: number;
  reason: string;
  status: DeadLetter['status'];
  deadAt: Date;
}

/** Collection names of {@link MongoGroupStore}. */
export const GROUP_COLLECTIONS = Object.freeze({ groups: 'groups', cursors: 'group_cursors', dead: 'group_dead_letters' });

/** Idempotent start-up migration for group state. */
export async function migrateGroups(db: Db): Promise<void> {
  await ensureIndexes(db, GROUP_COLLECTIONS.groups, []);
  await ensureIndexes(db, GROUP_COLLECTIONS.cursors, [{ key: { group: 1, partition: 1 }, name: 'group_partition' }]);
  await ensureIndexes(db, GROUP_COLLECTIONS.dead, [
    { key: { group: 1, status: 1, deadAt: 1 }, name: 'group_status_deadAt' },
    { key: { group: 1, partition: 1, status: 1 }, name: 'group_partition_status' },
  ]);
}

/** {@link GroupStore} on MongoDB. */
export class MongoGroupStore implements GroupStore {
  readonly #groups: Collection<GroupDoc>;
  readonly #cursors: Collection<CursorDoc>;
  readonly #dead: Collection<DeadDoc>;

  constructor(db: Db) {
    this.#groups = db.collection<GroupDoc>(GROUP_COLLECTIONS.groups);
    this.#cursors = db.collection<CursorDoc>(GROUP_COLLECTIONS.cursors);
    this.#dead = db.collection<DeadDoc>(GROUP_COLLECTIONS.dead);
  }

  async register(group: string, filter: string): Promise<void> {
    try {
      await this.#groups.insertOne({ _id: group, filter, createdAt: new Date() });
      return;
    } catch (err) {
      if (!isDuplicateKeyError(err)) throw err;
    }
    const existing = await this.#groups.findOne({ _id: group });
    if (existing && existing.filter !== filter) {
      throw new GatewayError('GROUP_MISMATCH', `group ${group} consumes ${existing.filter}, not ${filter}`);
    }
  }

  async loadCursor(group: string, partition: number): Promise<number> {
    return (await this.#cursors.findOne({ _id: `${group}/${partition}` }))?.seq ?? 0;
  }

  async loadCursors(group: string): Promise<Map<number, number>> {
    const docs = await this.#cursors.find({ group }, { projection: { partition: 1, seq: 1 } }).toArray();
    return new Map(docs.map((d) => [d.partition, d.seq]));
  }

  async saveCursor(group: string, partition: number, seq: number, epoch: number): Promise<boolean> {
    const filter = { _id: `${group}/${partition}`, epoch: { $lte: epoch } };
    const update = { $set: { group, partition, seq, epoch, updatedAt: new Date() } };
    try {
      const r = await this.#cursors.updateOne(filter, update, { upsert: true });
      return r.matchedCount + r.upsertedCount > 0;
    } catch (err) {
      if (!isDuplicateKeyError(err)) throw err;
    }
    // Lost an upsert race (or a newer epoch holds it): try once more against the existing document.
    const r = await this.#cursors.updateOne(filter, update);
    return r.matchedCount > 0;
  }

  async deadLetter(group: string, event: LogEvent, deliveries: number, reason: string): Promise<void> {
    await this.#dead.updateOne(
      { _id: `${group}/${event.id}` },
      {
        $set: {
          group,
          partition: event.partition,
          eventId: event.id,
          event,
          deliveries,
          reason: reason.slice(0, 2000),
          status: 'dead',
          deadAt: new Date(),
        },
      },
      { upsert: true },
    );
  }

  async listDeadLetters(group: string, limit: number): Promise<DeadLetter[]> {
    const docs = await this.#dead.find({ group, status: { $in: ['dead', 'replay'] } }, { sort: { deadAt: 1 }, limit }).toArray();
    return docs.map((d) => ({
      group: d.group,
      event: d.event,
      deliveries: d.deliveries,
      reason: d.reason,
      status: d.status,
      deadAt: d.deadAt,
    }));
  }

  async requestReplay(group: string, eventId: string): Promise<boolean> {
    const r = await this.#dead.updateOne({ _id: `${group}/${eventId}`, status: 'dead' }, { $set: { status: 'replay' } });
    return r.matchedCount > 0;
  }

  async takeReplays(group: string, partition: number, limit: number): Promise<DeadLetter[]> {
    const docs = await this.#dead.find({ group, partition, status: 'replay' }, { limit }).toArray();
    if (docs.length > 0)
      await this.#dead.updateMany({ _id: { $in: docs.map((d) => d._id) }, status: 'replay' }, { $set: { status: 'replayed' } });
    return docs.map((d) => ({ group: d.group, event: d.event, deliveries: 0, reason: d.reason, status: 'replayed', deadAt: d.deadAt }));
  }

  async resolveReplay(group: string, eventId: string, acked: boolean): Promise<void> {
    if (acked) await this.#dead.deleteOne({ _id: `${group}/${eventId}`, status: 'replayed' });
    else await this.#dead.updateOne({ _id: `${group}/${eventId}` }, { $set: { status: 'dead', deadAt: new Date() } });
  }
}
