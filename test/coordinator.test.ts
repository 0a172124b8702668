import { setTimeout as sleep } from 'node:timers/promises';
import { MongoLeaseStore, PartitionCoordinator, migrateLeases, type Lease } from '../internal/lease/index.js';
import { silentLogger } from '../internal/log/index.js';
import { useTestDb } from './harness/db.js';
import { eventually } from './harness/process.js';

const t = useTestDb('coordinator');

/** A coordinator plus a record of what it was told. */
function member(store: MongoLeaseStore, name: string, group: string, partitions: number) {
  const events: string[] = [];
  const coordinator = new PartitionCoordinator({
    store,
    group,
    member: name,
    partitions,
    ttlMs: 3_000,
    intervalMs: 100,
    log: silentLogger,
    handlers: {
      acquired: (l: Lease) => void events.push(`+${l.partition}`),
      lost: (p) => void events.push(`!${p}`),
      releasing: (p) => Promise.resolve(void events.push(`-${p}`)),
    },
  });
  return { coordinator, events };
}

const sizes = (ms: Array<{ coordinator: PartitionCoordinator }>): number[] => ms.map((m) => m.coordinator.owned.size).sort();

it('shares partitions fairly, moves only the surplus when a member joins, and hands over on stop', async () => {
  await migrateLeases(t.db);
  const store = new MongoLeaseStore(t.db);
  const a = member(store, 'a', 'g', 8);
  await a.coordinator.start();
  expect(a.coordinator.owned.size).toBe(8);

  const b = member(store, 'b', 'g', 8);
  await b.coordinator.start();
  await eventually(() => sizes([a, b]).join() === '4,4', 5_000, 'a 4/4 split');
  // a gave up exactly the four partitions b took; nothing else moved.
  expect(a.events.filter((e) => e.startsWith('-'))).toHaveLength(4);
  expect(a.events.filter((e) => e.startsWith('!'))).toHaveLength(0);

  const c = member(store, 'c', 'g', 8);
  await c.coordinator.start();
  await eventually(() => sizes([a, b, c]).join() === '2,3,3', 5_000, 'a 3/3/2 split');
  const owners = new Map<number, string>();
  for (const [name, m] of [
    ['a', a],
    ['b', b],
    ['c', c],
  ] as const) {
    for (const p of m.coordinator.owned.keys()) {
      expect(owners.has(p)).toBe(false);
      owners.set(p, name);
    }
  }
  expect(owners.size).toBe(8);

  await c.coordinator.stop();
  expect(c.events.filter((e) => e.startsWith('-')).length).toBe(c.events.filter((e) => e.startsWith('+')).length);
  await eventually(() => sizes([a, b]).join() === '4,4', 5_000, 'a 4/4 split after c stopped');
  await Promise.all([a.coordinator.stop(), b.coordinator.stop()]);
  expect(await store.members('g')).toEqual([]);
  expect((await store.list('g')).every((l) => l.holder === '')).toBe(true);
});

it('reports a lease as lost when another member takes it after expiry', async () => {
  await migrateLeases(t.db);
  const store = new MongoLeaseStore(t.db);
  const a = member(store, 'a', 'lost', 1);
  await a.coordinator.start();
  const lease = a.coordinator.owned.get(0) as Lease;
  // Simulate a pause: the lease expires and someone else takes it with a new epoch.
  await t.db.collection('leases').updateOne({ _id: `lost/0/${lease.epoch}` as never }, { $set: { expiresAt: new Date(0) } });
  const taken = await store.acquire('lost', 0, 'intruder', 60_000);
  expect(taken?.epoch).toBe(lease.epoch + 1);
  await eventually(() => a.events.includes('!0'), 5_000, 'the loss to be reported');
  await sleep(300);
  expect(a.coordinator.owned.size).toBe(0);
  await a.coordinator.stop();
});
