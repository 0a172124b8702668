import type { Collection, Db } from 'mongodb';
import { ensureCollections, isDuplicateKeyError } from '../mongo/index.js';
import type { Lease, LeaseStore, Member } from './types.js';

/**
 * One document per (group, partition, epoch). Taking a lease inserts the next
 * epoch's document: the unique `_id` lets exactly one claimant win an epoch on
 * every server, atomic read-modify-write or not.
 */
interface LeaseDocument {
  /** `<group>/<partition>/<epoch>` (`<group>/<partition>` in documents written before 0.2). */
  _id: string;
  group: string;
  partition: number;
  epoch: number;
  /** null or `released` once given up. */
  holder: string | null;
  released?: boolean;
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
  await ensureCollections(db, [
    { name: names.leases, indexes: [{ key: { group: 1, partition: 1, epoch: -1 }, name: 'group_partition_epoch' }] },
    { name: names.members, indexes: [{ key: { group: 1, expiresAt: 1 }, name: 'group_expiresAt' }] },
  ]);
}

/** Epoch documents kept per partition behind the newest (older ones are pruned on takeover). */
const KEEP_EPOCHS = 3;

function toLease(d: LeaseDocument): Lease {
  return Object.freeze({ group: d.group, partition: d.partition, holder: d.holder ?? '', epoch: d.epoch, expiresAt: d.expiresAt });
}

function isHeld(d: LeaseDocument, now: number): boolean {
  return d.holder !== null && d.released !== true && d.expiresAt.getTime() > now;
}

const epochId = (group: string, partition: number, epoch: number): string => `${group}/${partition}/${epoch}`;

/**
 * {@link LeaseStore} on MongoDB without transactions or atomic read-modify-write.
 *
 * - acquire: read the newest epoch document; if it is free or expired, insert
 *   the next epoch's document. Only one insert of an `_id` can succeed, so an
 *   epoch is never handed out twice, even where `findAndModify` is read-then-write
 *   (FerretDB 1.x).
 * - renew: extend our own epoch document, then check that no newer epoch exists;
 *   a holder that renews late after a takeover learns it lost.
 * - release: mark our epoch document released.
 *
 * Times come from the caller's clock; holders must keep clock skew well below
 * the lease TTL.
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
    const newest = await this.#newest(group, partition);
    if (newest && isHeld(newest, now.getTime())) return null;
    const epoch = (newest?.epoch ?? 0) + 1;
    const doc: LeaseDocument = {
      _id: epochId(group, partition, epoch),
      group,
      partition,
      epoch,
      holder,
      expiresAt: new Date(now.getTime() + ttlMs),
      acquiredAt: now,
    };
    try {
      await this.#leases.insertOne(doc);
    } catch (err) {
      // Another claimant won this epoch.
      if (isDuplicateKeyError(err)) return null;
      throw err;
    }
    // Old epochs only matter to their (long expired) holders' renewals, which fail without them too.
    await this.#leases.deleteMany({ group, partition, epoch: { $lt: epoch - KEEP_EPOCHS } });
    return toLease(doc);
  }

  async renew(lease: Lease, ttlMs: number): Promise<Lease | null> {
    const expiresAt = new Date(Date.now() + ttlMs);
    const r = await this.#leases.updateOne(
      { _id: epochId(lease.group, lease.partition, lease.epoch), holder: lease.holder, released: { $ne: true } },
      { $set: { expiresAt } },
    );
    if (r.matchedCount === 0) return null;
    // A claimant that saw our lease expired may have taken the next epoch meanwhile.
    if (await this.#leases.findOne({ _id: epochId(lease.group, lease.partition, lease.epoch + 1) }, { projection: { _id: 1 } }))
      return null;
    return Object.freeze({ ...lease, expiresAt });
  }

  async release(lease: Lease): Promise<void> {
    await this.#leases.updateOne(
      { _id: epochId(lease.group, lease.partition, lease.epoch), holder: lease.holder },
      { $set: { released: true, expiresAt: new Date(0) } },
    );
  }

  async list(group: string): Promise<Lease[]> {
    const docs = await this.#leases.find({ group }, { sort: { partition: 1, epoch: -1 } }).toArray();
    const newest = new Map<number, LeaseDocument>();
    for (const d of docs) if (!newest.has(d.partition)) newest.set(d.partition, d);
    return [...newest.values()].map((d) => toLease(d.released === true ? { ...d, holder: null } : d));
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

  async lapsed(group: string, withinMs: number): Promise<Member[]> {
    const now = Date.now();
    const docs = await this.#members
      .find({ group, expiresAt: { $gt: new Date(now - withinMs), $lte: new Date(now) } }, { sort: { member: 1 } })
      .toArray();
    return docs.map((d) => Object.freeze({ group: d.group, member: d.member, expiresAt: d.expiresAt }));
  }

  async leave(group: string, member: string): Promise<void> {
    await this.#members.deleteOne({ _id: `${group}/${member}` });
  }

  async #newest(group: string, partition: number): Promise<LeaseDocument | null> {
    return this.#leases.findOne({ group, partition }, { sort: { epoch: -1 } });
  }
}
