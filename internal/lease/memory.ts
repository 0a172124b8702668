import type { Lease, LeaseStore, Member } from './types.js';

/**
 * {@link LeaseStore} in memory: one instance shared by several coordinators
 * plays the database several processes share. For unit tests and as the
 * reference the contract suite holds the other adapters to.
 */
export class MemoryLeaseStore implements LeaseStore {
  readonly #leases = new Map<string, { lease: Lease; released: boolean }>();
  readonly #members = new Map<string, Member>();

  acquire(group: string, partition: number, holder: string, ttlMs: number): Promise<Lease | null> {
    const key = `${group}/${partition}`;
    const cur = this.#leases.get(key);
    if (cur && !cur.released && cur.lease.expiresAt.getTime() > Date.now()) return Promise.resolve(null);
    const lease = Object.freeze({ group, partition, holder, epoch: (cur?.lease.epoch ?? 0) + 1, expiresAt: new Date(Date.now() + ttlMs) });
    this.#leases.set(key, { lease, released: false });
    return Promise.resolve(lease);
  }

  renew(lease: Lease, ttlMs: number): Promise<Lease | null> {
    const cur = this.#leases.get(`${lease.group}/${lease.partition}`);
    if (!cur || cur.released || cur.lease.epoch !== lease.epoch || cur.lease.holder !== lease.holder) return Promise.resolve(null);
    const renewed = Object.freeze({ ...lease, expiresAt: new Date(Date.now() + ttlMs) });
    cur.lease = renewed;
    return Promise.resolve(renewed);
  }

  release(lease: Lease): Promise<void> {
    const cur = this.#leases.get(`${lease.group}/${lease.partition}`);
    if (cur && cur.lease.epoch === lease.epoch && cur.lease.holder === lease.holder) cur.released = true;
    return Promise.resolve();
  }

  list(group: string): Promise<Lease[]> {
    const out: Lease[] = [];
    for (const { lease, released } of this.#leases.values()) {
      if (lease.group === group) out.push(released ? Object.freeze({ ...lease, holder: '' }) : lease);
    }
    return Promise.resolve(out.sort((a, b) => a.partition - b.partition));
  }

  heartbeat(group: string, member: string, ttlMs: number): Promise<void> {
    this.#members.set(`${group}/${member}`, Object.freeze({ group, member, expiresAt: new Date(Date.now() + ttlMs) }));
    return Promise.resolve();
  }

  members(group: string): Promise<Member[]> {
    const now = Date.now();
    return this.#select(group, (expiresAt) => expiresAt > now);
  }

  lapsed(group: string, withinMs: number): Promise<Member[]> {
    const now = Date.now();
    return this.#select(group, (expiresAt) => expiresAt <= now && expiresAt > now - withinMs);
  }

  #select(group: string, keep: (expiresAt: number) => boolean): Promise<Member[]> {
    return Promise.resolve(
      [...this.#members.values()]
        .filter((m) => m.group === group && keep(m.expiresAt.getTime()))
        .sort((a, b) => a.member.localeCompare(b.member)),
    );
  }

  leave(group: string, member: string): Promise<void> {
    this.#members.delete(`${group}/${member}`);
    return Promise.resolve();
  }
}
