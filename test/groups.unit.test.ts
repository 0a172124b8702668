/**
 * Consumer-group delivery logic (GroupManager and its partitions) on the
 * in-memory group store, without a database: per-key order, round-robin over
 * members, backpressure, redelivery on NACK, ack timeout and member loss, dead
 * letters and replay.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { LogEvent } from '../internal/eventlog/index.js';
import { GroupManager, type GroupMember, type GroupMembership, type GroupSettings } from '../internal/groups/index.js';
import { MemoryGroupStore } from '../internal/groupstore/index.js';
import { MemoryLeaseStore } from '../internal/lease/index.js';
import { TopicPattern } from '../internal/topic/index.js';
import { eventually } from './harness/process.js';
import { MemoryLog, memoryGroupManager } from './harness/memory-ports.js';

interface Received {
  event: LogEvent;
  delivery: number;
  by: TestMember;
}

interface TestMember extends GroupMember {
  readonly got: Received[];
  /** Set by {@link join}. */
  membership: GroupMembership;
}

/** A member that records what it receives (also into `all`, in arrival order) and hands each delivery to `onSend`. */
function member(id: string, maxInFlight = 100, all: Received[] = [], onSend?: (r: Received) => void): TestMember {
  const m: TestMember = {
    id,
    maxInFlight,
    got: [],
    membership: undefined as unknown as GroupMembership,
    send: (event, delivery) => {
      const r = { event, delivery, by: m };
      m.got.push(r);
      all.push(r);
      onSend?.(r);
      return true;
    },
  };
  return m;
}

async function join(manager: GroupManager, m: TestMember, filter = jobs): Promise<TestMember> {
  m.membership = await manager.join('g', filter, m, 'earliest');
  m.membership.activate();
  return m;
}

/** Acks a delivery through the membership it was delivered to. */
function ack(r: Received): boolean {
  return r.by.membership.ack(r.event.id);
}

/** Waits (polling) until a synchronous condition holds. */
async function until(condition: () => boolean, what: string): Promise<void> {
  await eventually(() => Promise.resolve(condition() || undefined), 10_000, what);
}

const managers: GroupManager[] = [];
afterEach(async () => {
  for (const m of managers.splice(0)) await m.stop();
});

/** A manager (one gateway) over in-memory ports; pass `shared` ports to put several gateways on one "database". */
function setup(
  settings: Partial<GroupSettings> = {},
  shared: { log: MemoryLog; store: MemoryGroupStore; leases: MemoryLeaseStore } = {
    log: new MemoryLog(),
    store: new MemoryGroupStore(),
    leases: new MemoryLeaseStore(),
  },
) {
  const { log, store, leases } = shared;
  const manager = memoryGroupManager(log, { store, leases, settings });
  managers.push(manager);
  return { log, store, manager };
}

const jobs = TopicPattern.compile('jobs.*');

describe('GroupPartition on the in-memory group store', () => {
  it('keeps per-key order across members (a key waits while its previous event is unsettled); only the receiving member settles', async () => {
    const { log, manager, store } = setup();
    const arrived: Received[] = [];
    const a = member('a', 100, arrived);
    const b = member('b', 100, arrived);
    await join(manager, a);
    await join(manager, b);
    // Two keys in partition 0, interleaved; a non-matching topic is skipped.
    log.publish([
      { partition: 0, key: 'k1', topic: 'jobs.run', payload: 1 },
      { partition: 0, key: 'k2', topic: 'jobs.run', payload: 2 },
      { partition: 0, key: 'k1', topic: 'jobs.run', payload: 3 },
      { partition: 0, key: 'k1', topic: 'other.x', payload: 4 },
      { partition: 0, key: 'k2', topic: 'jobs.run', payload: 5 },
    ]);
    const all = () => arrived;
    await until(() => all().length === 2, 'the first event of each key');
    // Round-robin: one each, and only the heads of k1 and k2.
    expect(a.got).toHaveLength(1);
    expect(b.got).toHaveLength(1);
    expect(all().map((r) => r.event.payload)).toEqual([1, 2]);
    await sleep(50);
    expect(all()).toHaveLength(2);
    // Settling k2's head lets k2's next go; k1 still waits.
    // Only the member holding a delivery may settle it.
    const [first, second] = all() as [Received, Received];
    expect(first.by).not.toBe(second.by);
    expect(first.by.membership.ack(second.event.id)).toBe(false);
    expect(first.by.membership.nack(second.event.id, 3_600_000)).toBe(false);
    expect(ack(second)).toBe(true);
    await until(() => all().length === 3, "k2's second event");
    expect(all()[2]?.event.payload).toBe(5);
    expect(ack(first)).toBe(true);
    await until(() => all().length === 4, "k1's second event");
    expect(all()[3]?.event.payload).toBe(3);
    for (const r of all().slice(2)) expect(ack(r)).toBe(true);
    // Every event settled (the skipped one included): the cursor covers the partition.
    await eventually(async () => (await store.loadCursor('g', 0)) === 5, 5_000, 'the cursor to reach the head');
  });

  it('delivers everything exactly once to acking members, in key order, under many keys and partitions', async () => {
    const { log, manager, store } = setup({ partitions: 4 });
    const acked: Received[] = [];
    // Each member settles later, as a real client does.
    const members = ['m1', 'm2', 'm3'].map((id) =>
      member(id, 3, [], (r) => void setTimeout(() => r.by.membership.ack(r.event.id) && acked.push(r), 1)),
    );
    for (const m of members) await join(manager, m);
    const inputs = Array.from({ length: 400 }, (_, i) => ({ partition: i % 4, key: `k${i % 13}`, topic: 'jobs.run', payload: i }));
    for (let i = 0; i < inputs.length; i += 50) log.publish(inputs.slice(i, i + 50));
    await until(() => acked.length === 400, 'every event to be acked');
    expect(new Set(acked.map((r) => r.event.id)).size).toBe(400);
    expect(acked.every((r) => r.delivery === 1)).toBe(true);
    // Within a partition and key, acks come in publish order.
    const seen = new Map<string, number>();
    for (const r of acked) {
      const k = `${r.event.partition}/${r.event.key}`;
      expect(r.event.seq).toBeGreaterThan(seen.get(k) ?? 0);
      seen.set(k, r.event.seq);
    }
    // Work was shared.
    for (const m of members) expect(m.got.length).toBeGreaterThan(50);
    await eventually(
      async () => [...(await store.loadCursors('g')).values()].reduce((n, c) => n + c, 0) === 400,
      5_000,
      'cursors over every event',
    );
  });

  it('drops a member whose connection can no longer receive: its deliveries go to the others, never back to it in a loop', async () => {
    const { log, manager, store } = setup({ partitions: 1 });
    let attempts = 0;
    const dead: TestMember = { ...member('dead', 100), send: () => (attempts++, false) };
    await join(manager, dead);
    const live = member('live', 100, [], (r) => void r.by.membership.ack(r.event.id));
    await join(manager, live);
    log.publish(Array.from({ length: 20 }, (_, i) => ({ partition: 0, key: `k${i}`, topic: 'jobs.run', payload: i })));
    await until(() => live.got.length === 20, 'every event at the live member');
    await sleep(200);
    // One failed send at most: the member left the group on it. Nothing was counted as a delivery.
    expect(attempts).toBeLessThanOrEqual(1);
    expect(live.got.every((r) => r.delivery === 1)).toBe(true);
    expect(live.got).toHaveLength(20);
    await eventually(async () => (await store.loadCursor('g', 0)) === 20, 5_000, 'the cursor to reach the head');
  });

  it('caps deliveries per member and feeds partitions that waited for capacity', async () => {
    const { log, manager } = setup({ partitions: 2 });
    const m = await join(manager, member('solo', 1));
    // One batch over both partitions: only one delivery may be in flight at a time.
    log.publish([
      { partition: 0, key: 'a', topic: 'jobs.run', payload: 1 },
      { partition: 1, key: 'b', topic: 'jobs.run', payload: 2 },
      { partition: 0, key: 'c', topic: 'jobs.run', payload: 3 },
      { partition: 1, key: 'd', topic: 'jobs.run', payload: 4 },
    ]);
    for (let n = 1; n <= 4; n++) {
      await until(() => m.got.length === n, `delivery ${n}`);
      await sleep(20);
      expect(m.got).toHaveLength(n);
      expect(ack(m.got[n - 1]!)).toBe(true);
    }
    // Both partitions were served: freed capacity reached the partition that waited for it,
    // not only the partition whose ack freed it.
    expect(m.got.map((r) => r.event.payload).sort()).toEqual([1, 2, 3, 4]);
  });

  it('redelivers after NACK and after the ack timeout with growing counts, then dead-letters and replays', async () => {
    const { log, manager, store } = setup({ ackTimeoutMs: 100, maxDeliveries: 3 });
    const m = await join(manager, member('m'));
    const [e] = log.publish([{ partition: 1, key: 'x', topic: 'jobs.run', payload: 'p' }]);
    const later = log.publish([{ partition: 1, key: 'x', topic: 'jobs.run', payload: 'after' }])[0]!;
    await until(() => m.got.length === 1, 'the first delivery');
    expect(m.membership.nack(e!.id, 30)).toBe(true);
    expect(m.membership.nack(e!.id, 30)).toBe(false); // not in flight any more
    await until(() => m.got.length === 2, 'the redelivery after NACK');
    // No ack: the timeout redelivers, and the third failure dead-letters it.
    await until(() => m.got.length === 3, 'the redelivery after the ack timeout');
    expect(m.got.map((r) => [r.event.id, r.delivery])).toEqual([
      [e!.id, 1],
      [e!.id, 2],
      [e!.id, 3],
    ]);
    const dead = await eventually(
      async () => {
        const list = await store.listDeadLetters('g', 10);
        return list.length === 1 ? list : undefined;
      },
      5_000,
      'the dead letter',
    );
    expect(dead[0]).toMatchObject({ deliveries: 3, reason: 'ack timeout', event: { id: e!.id } });
    // The key moves on past its dead event.
    await until(() => m.got.length === 4, 'the next event of the key');
    expect(m.got[3]?.event.id).toBe(later.id);
    expect(m.membership.ack(later.id)).toBe(true);
    expect(await store.requestReplay('g', e!.id)).toBe(true);
    await until(() => m.got.length === 5, 'the replayed dead letter');
    expect(m.got[4]).toMatchObject({ delivery: 1, event: { id: e!.id } });
    expect(m.membership.ack(e!.id)).toBe(true);
    await eventually(async () => (await store.countDeadLetters('g')) === 0, 5_000, 'the replayed dead letter to be resolved');
    await eventually(async () => (await store.loadCursor('g', 1)) === 2, 5_000, 'the cursor');
  });

  it("gives a departed member's deliveries to another member at once, in key order", async () => {
    const { log, manager } = setup({ ackTimeoutMs: 60_000 });
    const a = await join(manager, member('a', 1));
    const events = log.publish([
      { partition: 0, key: 'k', topic: 'jobs.run', payload: 1 },
      { partition: 0, key: 'k', topic: 'jobs.run', payload: 2 },
    ]);
    await until(() => a.got.length === 1, 'a to get the first event');
    const b = await join(manager, member('b'));
    await sleep(30);
    expect(b.got).toHaveLength(0); // the key is busy with a
    await a.membership.leave();
    await until(() => b.got.length === 1, 'b to get the released event');
    expect(b.got[0]?.event.id).toBe(events[0]!.id);
    expect(b.membership.ack(events[0]!.id)).toBe(true);
    await until(() => b.got.length === 2, 'b to get the next one');
    expect(b.got[1]?.event.id).toBe(events[1]!.id);
    // Given back, the first event counts as delivered again; the second is a first delivery.
    expect(b.got.map((r) => r.delivery)).toEqual([2, 1]);
  });

  it('continues delivery counts on another gateway after the partition changes owner', async () => {
    const shared = { log: new MemoryLog(), store: new MemoryGroupStore(), leases: new MemoryLeaseStore() };
    const a = setup({ partitions: 1, instance: 'gw-a' }, shared);
    const first = await join(a.manager, member('on-a', 2));
    const [once, twice] = shared.log.publish([
      { partition: 0, key: 'k1', topic: 'jobs.run', payload: 'once' },
      { partition: 0, key: 'k2', topic: 'jobs.run', payload: 'twice' },
    ]);
    await until(() => first.got.length === 2, 'both on gateway a');
    expect(first.membership.nack(twice!.id, 10)).toBe(true);
    await until(() => first.got.length === 3, 'the redelivery on gateway a');
    expect(first.got.map((r) => [r.event.payload, r.delivery])).toEqual([
      ['once', 1],
      ['twice', 1],
      ['twice', 2],
    ]);
    // Gateway a goes away without settling anything; gateway b takes the partition over.
    await a.manager.stop();
    const b = setup({ partitions: 1, instance: 'gw-b' }, shared);
    const second = await join(b.manager, member('on-b', 100));
    await until(() => second.got.length === 2, 'both again on gateway b');
    expect(new Map(second.got.map((r) => [r.event.id, r.delivery]))).toEqual(
      new Map([
        [once!.id, 2],
        [twice!.id, 3],
      ]),
    );
    // Gateway a raised its delivered mark 64 events past what it read (one write per 64 events, not per
    // event): later events up to that mark count as possibly delivered; beyond it they start at 1.
    shared.log.publish(Array.from({ length: 65 }, (_, i) => ({ partition: 0, key: `n${i}`, topic: 'jobs.run', payload: i })));
    await until(() => second.got.length === 67, 'the new events');
    const bySeq = new Map(second.got.slice(2).map((r) => [r.event.seq, r.delivery]));
    expect(bySeq.get(3)).toBe(2);
    expect(bySeq.get(66)).toBe(2);
    expect(bySeq.get(67)).toBe(1);
  });

  it('starts a new group at from (now by default), resumes an existing one from its cursors, and holds deliveries until activation', async () => {
    const { log, manager } = setup({ partitions: 2 });
    const history = log.publish([
      { partition: 0, key: 'a', topic: 'jobs.run', payload: 'old-0' },
      { partition: 1, key: 'b', topic: 'jobs.run', payload: 'old-1' },
      { partition: 1, key: 'c', topic: 'jobs.run', payload: 'old-2' },
    ]);
    const joinAt = async (group: string, from?: Parameters<GroupManager['join']>[3]) => {
      const m = member(group);
      m.membership = await manager.join(group, jobs, m, from);
      return m;
    };
    const fresh = await joinAt('fresh');
    const all = await joinAt('all', 'earliest');
    const some = await joinAt('some', { '1': 1 });
    await sleep(50);
    // Not activated yet: nothing delivered.
    for (const m of [fresh, all, some]) expect(m.got).toHaveLength(0);
    for (const m of [fresh, all, some]) m.membership.activate();
    log.publish([{ partition: 0, key: 'd', topic: 'jobs.run', payload: 'new' }]);
    await until(() => fresh.got.length === 1 && all.got.length === 4 && some.got.length === 2, 'each group from its start');
    expect(fresh.got.map((r) => r.event.payload)).toEqual(['new']);
    expect(all.got.map((r) => r.event.payload).sort()).toEqual(['new', 'old-0', 'old-1', 'old-2']);
    expect(some.got.map((r) => r.event.payload).sort()).toEqual(['new', 'old-2']);
    expect(history).toHaveLength(3);
    // A later member of an existing group resumes where the group is, whatever its own from.
    for (const r of fresh.got) expect(ack(r)).toBe(true);
    await fresh.membership.leave();
    const again = await joinAt('fresh', 'earliest');
    again.membership.activate();
    log.publish([{ partition: 1, key: 'e', topic: 'jobs.run', payload: 'newer' }]);
    await until(() => again.got.length === 1, 'the next event only');
    await sleep(50);
    expect(again.got.map((r) => r.event.payload)).toEqual(['newer']);
  });

  it('a group with tags gets only the events carrying all of them, passes over the rest, and refuses other tags', async () => {
    const { manager, log, store } = setup();
    const got: Received[] = [];
    const a = member('a', 100, got);
    a.membership = await manager.join('g', jobs, a, 'earliest', ['vip', 'eu']);
    a.membership.activate();
    log.publish([
      { partition: 0, key: 'k', topic: 'jobs.run', payload: 'both', tags: ['eu', 'vip', 'x'] },
      { partition: 0, key: 'k', topic: 'jobs.run', payload: 'one', tags: ['eu'] },
      { partition: 0, key: 'k', topic: 'jobs.run', payload: 'none' },
      { partition: 0, key: 'k', topic: 'other.run', payload: 'topic', tags: ['eu', 'vip'] },
      { partition: 0, key: 'k', topic: 'jobs.run', payload: 'last', tags: ['vip', 'eu'] },
    ]);
    // One key: each delivery waits for the previous one's ack.
    await until(() => got.length === 1, 'the first tagged event');
    expect(ack(got[0] as Received)).toBe(true);
    await until(() => got.length === 2, 'the second tagged event');
    expect(ack(got[1] as Received)).toBe(true);
    expect(got.map((r) => r.event.payload)).toEqual(['both', 'last']);
    // The cursor passed over the others: nothing is held back at them.
    await eventually(async () => ((await store.loadCursor('g', 0)) === 5 ? true : undefined), 10_000, 'the cursor past every event');
    expect((await store.getGroup('g'))?.tags).toEqual(['eu', 'vip']);
    // The same tags in another order join; other tags, or none, are another group.
    const b = member('b');
    b.membership = await manager.join('g', jobs, b, 'now', ['eu', 'vip', 'eu']);
    await expect(manager.join('g', jobs, member('c'), 'now', ['eu'])).rejects.toMatchObject({
      code: 'GROUP_MISMATCH',
      message: 'group g consumes jobs.* with tags eu, vip, not jobs.* with tags eu',
    });
    await expect(manager.join('g', jobs, member('d'))).rejects.toMatchObject({ code: 'GROUP_MISMATCH' });
    await b.membership.leave();
    await a.membership.leave();
  });

  it('refuses a member with another filter and unknown acks; leaving twice is harmless', async () => {
    const { manager } = setup();
    const a = await join(manager, member('a'));
    await expect(manager.join('g', TopicPattern.compile('other.*'), member('b'))).rejects.toMatchObject({ code: 'GROUP_MISMATCH' });
    expect(a.membership.ack('nope')).toBe(false);
    await a.membership.leave();
    await a.membership.leave(); // idempotent
  });
});
