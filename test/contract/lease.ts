/**
 * Contract suite for the LeaseStore port. Every adapter (MongoDB, Kubernetes,
 * in memory) runs it through `leaseStoreContract(name, factory, options)`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { LeaseStore } from '../../internal/lease/index.js';

/** Options of {@link leaseStoreContract}. */
export interface LeaseContractOptions {
  /**
   * `count` independent stores over the state of `store` (separate connections,
   * as separate processes would have), for the race tests.
   */
  peers?: (store: LeaseStore, count: number) => Promise<LeaseStore[]>;
}

/** Registers the LeaseStore contract tests; `factory` returns a store over fresh state. */
export function leaseStoreContract(name: string, factory: () => Promise<LeaseStore>, options: LeaseContractOptions = {}): void {
  describe(`LeaseStore contract: ${name}`, () => {
    it('hands each epoch of a partition to one claimant only, however many race for it', async () => {
      const s = await factory();
      const peers = options.peers ? await options.peers(s, 8) : Array.from({ length: 8 }, () => s);
      const won: Array<{ holder: string; epoch: number }> = [];
      for (let round = 0; round < 12; round++) {
        // A lease of 1 ms lapses at once, so every round all claimants race for the next epoch.
        const results = await Promise.all(peers.map((p, i) => p.acquire('race', 0, `claimant-${i}`, 1)));
        for (const r of results) if (r) won.push({ holder: r.holder, epoch: r.epoch });
        await sleep(3);
      }
      const epochs = won.map((w) => w.epoch);
      expect(epochs.length).toBeGreaterThanOrEqual(12);
      expect(new Set(epochs).size).toBe(epochs.length);
    });

    it('gives a free lease to one holder and bumps the epoch on every change of holder', async () => {
      const s = await factory();
      const a = await s.acquire('g1', 0, 'alice', 10_000);
      expect(a).toMatchObject({ group: 'g1', partition: 0, holder: 'alice', epoch: 1 });
      expect(await s.acquire('g1', 0, 'bob', 10_000)).toBeNull();
      const renewed = await s.renew(a!, 10_000);
      expect(renewed?.epoch).toBe(1);
      expect(renewed!.expiresAt.getTime()).toBeGreaterThanOrEqual(a!.expiresAt.getTime());
      await s.release(renewed!);
      const b = await s.acquire('g1', 0, 'bob', 10_000);
      expect(b).toMatchObject({ holder: 'bob', epoch: 2 });
      // The former holder is fenced: neither renew nor release touches bob's lease.
      expect(await s.renew(renewed!, 10_000)).toBeNull();
      await s.release(renewed!);
      expect(await s.acquire('g1', 0, 'carol', 10_000)).toBeNull();
    });

    it('lets another holder take an expired lease, fencing the old one', async () => {
      const s = await factory();
      const a = await s.acquire('g2', 5, 'alice', 200);
      await sleep(300);
      const b = await s.acquire('g2', 5, 'bob', 10_000);
      expect(b).toMatchObject({ holder: 'bob', epoch: (a?.epoch ?? 0) + 1 });
      expect(await s.renew(a!, 10_000)).toBeNull();
    });

    it('lists a group and keeps groups apart', async () => {
      const s = await factory();
      await s.acquire('g3', 1, 'alice', 10_000);
      await s.acquire('g3', 0, 'bob', 10_000);
      await s.acquire('other', 0, 'alice', 10_000);
      const list = await s.list('g3');
      expect(list.map((l) => [l.partition, l.holder])).toEqual([
        [0, 'bob'],
        [1, 'alice'],
      ]);
    });

    it('tracks live members by heartbeat, expiry and leave', async () => {
      const s = await factory();
      await s.heartbeat('g4', 'alice', 10_000);
      // Long enough that two more calls on a loaded machine (and a real API server) end well before it.
      await s.heartbeat('g4', 'bob', 1_500);
      await s.heartbeat('g5', 'carol', 10_000);
      expect((await s.members('g4')).map((m) => m.member)).toEqual(['alice', 'bob']);
      expect(await s.lapsed('g4', 60_000)).toEqual([]);
      await sleep(1_700);
      expect((await s.members('g4')).map((m) => m.member)).toEqual(['alice']);
      // Bob stopped heartbeating without leaving: he lapsed (a crash, as ops reports it).
      expect((await s.lapsed('g4', 60_000)).map((m) => m.member)).toEqual(['bob']);
      expect(await s.lapsed('g4', 1)).toEqual([]);
      await s.leave('g4', 'alice');
      expect(await s.members('g4')).toEqual([]);
      // Leaving is not lapsing.
      expect((await s.lapsed('g4', 60_000)).map((m) => m.member)).toEqual(['bob']);
      expect(await s.lapsed('g5', 60_000)).toEqual([]);
    });
  });
}
