import type { Collection, Db } from 'mongodb';
import { ensureIndexes, isDuplicateKeyError } from '../mongo/index.js';
import type { Lease, LeaseStore, Member } from './types.js';

interface LeaseDocument {
  _id: string;
  group: string;
  partition: number;
  holder: string | null;
  epoch: number;
  expiresAt: Date;
  acquiredAt?: Date;
}

interface MemberDocument {
  _id: string;
  group: string;
  member: string;
  expiresAt: Date;
}

/** Collection names used by {@link MongoLeaseStore}. */
export interface LeaseCollections {
  leases: string;
  members: string;
}

/** Default collection names. */
export const DEFAULT_LEASE_COLLECTIONS: Readonly<LeaseCollections> = Object.freeze({ leases: 'leases', members: 'lease_members' });

/** Idempotent start-up migration for leases and membership. */
export async function migrateLeases(db: Db, names: LeaseCollections = DEFAULT_LEASE_COLLECTIONS): Promise<void> {
  await ensureIndexes(db, names.leases, [{ key: { group: 1, partition: 1 }, name: 'group_partition' }]);
  await ensureIndexes(db, names.members, [{ key: { group: 1, expiresAt: 1 }, name: 'group_expiresAt' }]);
}

function toLease(d: LeaseDocument): Lease {
  return Object.freeze({ group: d.group, partition: d.partition, holder: d.holder ?? '', epoch: d.epoch, expiresAt: d.expiresAt });
}

/**
 * {@link LeaseStore} on MongoDB: every transition is one conditional
 * single-document update, so it needs no transactions. Times come from the
 * caller's clock; holders must keep clock skew well below the lease TTL.
 */
export class MongoLeaseStore implements LeaseStore {
  readonly #leases: Collection<LeaseDocument>;
  readonly #members: Collection<MemberDocument>;

  constructor(db: Db, names: LeaseCollections = DEFAULT_LEASE_COLLECTIONS) {
    this.#leases = db.collection<LeaseDocument>(names.leases);
    this.#members = db.collection<MemberDocument>(names.members);
  }

  async acquire(group: string, partition: number, holder: string, ttlMs: number): Promise<Lease | null> {
    const now = new Date();
    try {
      const d = await this.#leases.findOneAndUpdate(
        { _id: `${group}/${partition}`, $or: [{ holder: null }, { expiresAt: { $lte: now } }] },
        { $set: { group, partition, holder, expiresAt: new Date(now.getTime() + ttlMs), acquiredAt: now }, $inc: { epoch: 1 } },
        { upsert: true, returnDocument: 'after' },
      );
      return d && d.holder === holder ? toLease(d) : null;
    } catch (err) {
      // The upsert collided with a live record: someone else holds it.
      if (isDuplicateKeyError(err)) return null;
      throw err;
    }
  }

  async renew(lease: Lease, ttlMs: number): Promise<Lease | null> {
    const d = await this.#leases.findOneAndUpdate(
      { _id: `${lease.group}/${lease.partition}`, holder: lease.holder, epoch: lease.epoch },
      { $set: { expiresAt: new Date(Date.now() + ttlMs) } },
      { returnDocument: 'after' },
    );
    return d ? toLease(d) : null;
  }

  async release(lease: Lease): Promise<void> {
    await this.#leases.updateOne(
      { _id: `${lease.group}/${lease.partition}`, holder: lease.holder, epoch: lease.epoch },
      { $set: { holder: null, expiresAt: new Date(0) } },
    );
  }

  async list(group: string): Promise<Lease[]> {
    const docs = await this.#leases.find({ group }, { sort: { partition: 1 } }).toArray();
    return docs.map(toLease);
  }

  async heartbeat(group: string, member: string, ttlMs: number): Promise<void> {
    await this.#members.updateOne(
      { _id: `${group}/${member}` },
      { $set: { group, member, expiresAt: new Date(Date.now() + ttlMs) } },
      { upsert: true },
    );
  }

  async members(group: string): Promise<Member[]> {
    const docs = await this.#members.find({ group, expiresAt: { $gt: new Date() } }, { sort: { member: 1 } }).toArray();
    return docs.map((d) => Object.freeze({ group: d.group, member: d.member, expiresAt: d.expiresAt }));
  }

  async leave(group: string, member: string): Promise<void> {
    await this.#members.deleteOne({ _id: `${group}/${member}` });
  }
}
