import { type Collection, type Db, type UpdateFilter } from 'mongodb';
import type { LogEvent } from '../eventlog/index.js';
import { ensureIndexes, isDuplicateKeyError, isStorageError, isTransientError } from '../mongo/index.js';
import {
  GroupStoreError,
  MAX_REASON_LENGTH,
  checkCursor,
  checkStart,
  normalTags,
  type DeadLetter,
  type DeliveryState,
  type GroupRecord,
  type GroupStore,
} from './types.js';

interface GroupDoc {
  _id: string;
  filter: string;
  /** Absent when the group takes every event of its filter. */
  tags?: string[];
  createdAt: Date;
  /** Start position per partition (keys are partition numbers); absent for groups created before positions were kept. */
  start?: Record<string, number>;
}

function toRecord(g: GroupDoc): GroupRecord {
  return {
    name: g._id,
    filter: g.filter,
    ...(g.tags === undefined || g.tags.length === 0 ? {} : { tags: [...g.tags] }),
    createdAt: g.createdAt,
    start: startMap(g.start),
  };
}

function startMap(start: Record<string, number> | undefined): Map<number, number> {
  return new Map(Object.entries(start ?? {}).map(([p, seq]) => [Number(p), seq]));
}
interface CursorDoc {
  _id: string;
  group: string;
  partition: number;
  /** Absent until the first cursor save (a delivered mark may come first). */
  seq?: number;
  epoch: number;
  /** Events up to this sequence may have been delivered (written before they are). */
  delivered?: number;
  updatedAt: Date;
}
interface DeliveryDoc {
  _id: string;
  group: string;
  partition: number;
  seq: number;
  deliveries: number;
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

/** Collection names of a {@link MongoGroupStore}. */
export interface GroupCollections {
  readonly groups: string;
  readonly cursors: string;
  readonly deliveries: string;
  readonly dead: string;
}

/** The collections the binaries use. */
export const DEFAULT_GROUP_COLLECTIONS: GroupCollections = Object.freeze({
  groups: 'groups',
  cursors: 'group_cursors',
  deliveries: 'group_deliveries',
  dead: 'group_dead_letters',
});

/** Idempotent start-up migration for group state. */
export async function migrateGroups(db: Db, names: GroupCollections = DEFAULT_GROUP_COLLECTIONS): Promise<void> {
  await ensureIndexes(db, names.groups, []);
  await ensureIndexes(db, names.cursors, [{ key: { group: 1, partition: 1 }, name: 'group_partition' }]);
  await ensureIndexes(db, names.deliveries, [{ key: { group: 1, partition: 1, seq: 1 }, name: 'group_partition_seq' }]);
  await ensureIndexes(db, names.dead, [
    { key: { group: 1, status: 1, deadAt: 1 }, name: 'group_status_deadAt' },
    { key: { group: 1, partition: 1, status: 1 }, name: 'group_partition_status' },
  ]);
}

const WAITING: Array<DeadLetter['status']> = ['dead', 'replay'];

function toDeadLetter(d: DeadDoc): DeadLetter {
  return { group: d.group, event: d.event, deliveries: d.deliveries, reason: d.reason, status: d.status, deadAt: d.deadAt };
}

/** {@link GroupStore} on MongoDB. Every query is keyed by `_id` or an index on `group`. */
export class MongoGroupStore implements GroupStore {
  readonly #groups: Collection<GroupDoc>;
  readonly #cursors: Collection<CursorDoc>;
  readonly #deliveries: Collection<DeliveryDoc>;
  readonly #dead: Collection<DeadDoc>;

  constructor(db: Db, names: GroupCollections = DEFAULT_GROUP_COLLECTIONS) {
    this.#groups = db.collection<GroupDoc>(names.groups);
    this.#cursors = db.collection<CursorDoc>(names.cursors);
    this.#deliveries = db.collection<DeliveryDoc>(names.deliveries);
    this.#dead = db.collection<DeadDoc>(names.dead);
  }

  async register(
    group: string,
    filter: string,
    start: ReadonlyMap<number, number> = new Map(),
    tags: readonly string[] = [],
  ): Promise<GroupRecord> {
    checkStart(start);
    try {
      return await this.#register(group, filter, start, normalTags(tags));
    } catch (err) {
      // A client waits on this one (a group SUBSCRIBE): tell it whether a retry may help.
      if (!isStorageError(err)) throw err;
      throw new GroupStoreError('STORAGE_FAILED', `registering group ${group} failed: ${err.message}`, {
        cause: err,
        retryable: isTransientError(err),
      });
    }
  }

  async #register(group: string, filter: string, start: ReadonlyMap<number, number>, tags: string[]): Promise<GroupRecord> {
    const doc: GroupDoc = {
      _id: group,
      filter,
      ...(tags.length === 0 ? {} : { tags }),
      createdAt: new Date(),
      start: Object.fromEntries([...start].map(([p, s]) => [String(p), s])),
    };
    try {
      // One insert: the filter and the start positions are decided together, by whoever creates the group.
      await this.#groups.insertOne(doc);
      return toRecord(doc);
    } catch (err) {
      if (!isDuplicateKeyError(err)) throw err;
    }
    const existing = await this.#groups.findOne({ _id: group });
    // Deleted between our insert and this read (an operator removing it): the caller retries.
    if (!existing) throw new GroupStoreError('INCONSISTENT', `group ${group} was deleted during registration; retry`);
    return toRecord(existing);
  }

  async deleteGroup(group: string): Promise<boolean> {
    const r = await this.#groups.deleteOne({ _id: group });
    await this.#cursors.deleteMany({ group });
    await this.#deliveries.deleteMany({ group });
    await this.#dead.deleteMany({ group });
    return r.deletedCount > 0;
  }

  async listGroups(limit: number): Promise<GroupRecord[]> {
    const docs = await this.#groups.find({}, { sort: { _id: 1 }, limit }).toArray();
    return docs.map(toRecord);
  }

  async getGroup(group: string): Promise<GroupRecord | null> {
    const g = await this.#groups.findOne({ _id: group });
    return g ? toRecord(g) : null;
  }

  async loadCursor(group: string, partition: number): Promise<number> {
    const [cursor, g] = await Promise.all([
      this.#cursors.findOne({ _id: `${group}/${partition}` }),
      this.#groups.findOne({ _id: group }, { projection: { start: 1 } }),
    ]);
    return cursor?.seq ?? g?.start?.[String(partition)] ?? 0;
  }

  async loadCursors(group: string): Promise<Map<number, number>> {
    const [docs, g] = await Promise.all([
      this.#cursors.find({ group }, { projection: { partition: 1, seq: 1 } }).toArray(),
      this.#groups.findOne({ _id: group }, { projection: { start: 1 } }),
    ]);
    const out = startMap(g?.start);
    for (const d of docs) if (d.seq !== undefined) out.set(d.partition, d.seq);
    return out;
  }

  async saveCursor(group: string, partition: number, seq: number, epoch: number): Promise<boolean> {
    checkCursor(partition, seq, epoch);
    return await this.#fencedUpsert(group, partition, epoch, { $set: { group, partition, seq, epoch, updatedAt: new Date() } });
  }

  async markDelivered(group: string, partition: number, seq: number, epoch: number): Promise<boolean> {
    checkCursor(partition, seq, epoch);
    return await this.#fencedUpsert(group, partition, epoch, {
      $set: { group, partition, epoch, updatedAt: new Date() },
      $max: { delivered: seq },
    });
  }

  /** Applies `update` to a partition's cursor document unless a newer epoch owns it; false when fenced. */
  async #fencedUpsert(group: string, partition: number, epoch: number, update: UpdateFilter<CursorDoc>): Promise<boolean> {
    const filter = { _id: `${group}/${partition}`, epoch: { $lte: epoch } };
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

  async recordDeliveries(group: string, partition: number, eventId: string, seq: number, deliveries: number): Promise<void> {
    checkCursor(partition, seq, deliveries);
    const filter = { _id: `${group}/${eventId}` };
    const update = { $set: { group, partition, seq }, $max: { deliveries } };
    try {
      await this.#deliveries.updateOne(filter, update, { upsert: true });
    } catch (err) {
      if (!isDuplicateKeyError(err)) throw err;
      // Two upserts of one count raced and the other inserted first: apply ours to its document.
      await this.#deliveries.updateOne(filter, update);
    }
  }

  async loadDeliveries(group: string, partition: number, afterSeq: number): Promise<DeliveryState> {
    const [cursor, counts] = await Promise.all([
      this.#cursors.findOne({ _id: `${group}/${partition}` }, { projection: { delivered: 1 } }),
      this.#deliveries.find({ group, partition, seq: { $gt: afterSeq } }, { projection: { deliveries: 1 } }).toArray(),
    ]);
    const prefix = `${group}/`;
    return {
      deliveredUpTo: cursor?.delivered ?? 0,
      counts: new Map(counts.map((d) => [d._id.slice(prefix.length), d.deliveries])),
    };
  }

  async forgetDeliveries(group: string, partition: number, seq: number): Promise<void> {
    await this.#deliveries.deleteMany({ group, partition, seq: { $lte: seq } });
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
          reason: reason.slice(0, MAX_REASON_LENGTH),
          status: 'dead',
          deadAt: new Date(),
        },
      },
      { upsert: true },
    );
  }

  async listDeadLetters(group: string, limit: number): Promise<DeadLetter[]> {
    const docs = await this.#dead.find({ group, status: { $in: WAITING } }, { sort: { deadAt: 1 }, limit }).toArray();
    return docs.map(toDeadLetter);
  }

  countDeadLetters(group: string): Promise<number> {
    return this.#dead.countDocuments({ group, status: { $in: WAITING } });
  }

  async requestReplay(group: string, eventId: string): Promise<boolean> {
    const r = await this.#dead.updateOne({ _id: `${group}/${eventId}`, status: 'dead' }, { $set: { status: 'replay' } });
    return r.matchedCount > 0;
  }

  async takeReplays(group: string, partition: number, limit: number): Promise<DeadLetter[]> {
    const docs = await this.#dead.find({ group, partition, status: 'replay' }, { limit }).toArray();
    if (docs.length > 0)
      await this.#dead.updateMany({ _id: { $in: docs.map((d) => d._id) }, status: 'replay' }, { $set: { status: 'replayed' } });
    return docs.map((d) => ({ ...toDeadLetter(d), deliveries: 0, status: 'replayed' }));
  }

  async resolveReplay(group: string, eventId: string, acked: boolean): Promise<void> {
    if (acked) await this.#dead.deleteOne({ _id: `${group}/${eventId}`, status: 'replayed' });
    else await this.#dead.updateOne({ _id: `${group}/${eventId}` }, { $set: { status: 'dead', deadAt: new Date() } });
  }
}
