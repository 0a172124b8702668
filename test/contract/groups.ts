/**
 * Contract suite for the GroupStore port. Every adapter (MongoDB, in-memory)
 * runs it through `groupStoreContract(name, factory)`; `factory` returns a
 * store over fresh, empty state.
 */
import type { LogEvent } from '../../internal/eventlog/index.js';
import { GroupStoreError, MAX_REASON_LENGTH, type GroupStore } from '../../internal/groupstore/index.js';

let counter = 0;
function event(partition: number, seq: number, extra: Partial<LogEvent> = {}): LogEvent {
  const at = new Date(Date.UTC(2026, 0, 1, 0, 0, seq));
  return {
    id: `ev-${++counter}`,
    topic: 'orders.created',
    key: `k${seq}`,
    payload: { seq, nested: { list: [1, 'two', null] } },
    headers: { trace: `t${seq}` },
    createdAt: at,
    publishedAt: at,
    partition,
    seq,
    ...extra,
  };
}

/** Registers the GroupStore contract tests. */
export function groupStoreContract(name: string, factory: () => Promise<GroupStore>): void {
  describe(`GroupStore contract: ${name}`, () => {
    it('registers a group once: the first filter wins and later calls return it', async () => {
      const s = await factory();
      const first = await s.register('billing', 'orders.*');
      expect(first).toMatchObject({ name: 'billing', filter: 'orders.*' });
      expect(first.createdAt).toBeInstanceOf(Date);
      const again = await s.register('billing', 'invoices.**');
      expect(again).toEqual(first);
      await s.register('audit', 'audit.**');
      await s.register('zeta', 'z.*');
      expect((await s.listGroups(10)).map((g) => [g.name, g.filter])).toEqual([
        ['audit', 'audit.**'],
        ['billing', 'orders.*'],
        ['zeta', 'z.*'],
      ]);
      expect((await s.listGroups(2)).map((g) => g.name)).toEqual(['audit', 'billing']);
    });

    it('records tags with the filter, sorted and once each; the first registration wins', async () => {
      const s = await factory();
      const tagged = await s.register('eu-billing', 'orders.*', new Map(), ['vip', 'eu', 'vip']);
      expect(tagged).toMatchObject({ name: 'eu-billing', filter: 'orders.*', tags: ['eu', 'vip'] });
      expect(await s.register('eu-billing', 'orders.*', new Map(), ['other'])).toEqual(tagged);
      expect(await s.getGroup('eu-billing')).toEqual(tagged);
      expect((await s.listGroups(10)).find((g) => g.name === 'eu-billing')?.tags).toEqual(['eu', 'vip']);
      // No tags, or an empty list: every event of the filter, and no tags field.
      expect((await s.register('all', 'orders.*', new Map(), [])).tags).toBeUndefined();
      expect((await s.register('all-too', 'orders.*')).tags).toBeUndefined();
      await expect(s.register('bad-tags', 'x.*', new Map(), [''])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await expect(
        s.register(
          'many-tags',
          'x.*',
          new Map(),
          Array.from({ length: 17 }, (_, i) => `t${i}`),
        ),
      ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      expect(await s.getGroup('bad-tags')).toBeNull();
    });

    it('starts a partition without a saved cursor at the start position the group was created with', async () => {
      const s = await factory();
      const created = await s.register(
        'late',
        'orders.*',
        new Map([
          [0, 40],
          [3, 7],
        ]),
      );
      expect(created.start).toEqual(
        new Map([
          [0, 40],
          [3, 7],
        ]),
      );
      // A later registration does not move the start.
      expect((await s.register('late', 'orders.*', new Map([[0, 99]]))).start).toEqual(created.start);
      expect(await s.loadCursor('late', 0)).toBe(40);
      expect(await s.loadCursor('late', 1)).toBe(0);
      expect(await s.saveCursor('late', 0, 41, 1)).toBe(true);
      expect(await s.loadCursor('late', 0)).toBe(41);
      expect(await s.loadCursors('late')).toEqual(
        new Map([
          [0, 41],
          [3, 7],
        ]),
      );
      expect((await s.listGroups(10)).find((g) => g.name === 'late')?.start).toEqual(created.start);
      // Without start positions a group starts at 0 everywhere.
      expect((await s.register('plain', 'x.*')).start).toEqual(new Map());
      await expect(s.register('bad', 'x.*', new Map([[0, -1]]))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    });

    it('keeps one cursor per group partition, fenced by epoch', async () => {
      const s = await factory();
      expect(await s.loadCursor('g', 0)).toBe(0);
      expect(await s.loadCursors('g')).toEqual(new Map());
      expect(await s.saveCursor('g', 0, 5, 1)).toBe(true);
      expect(await s.saveCursor('g', 0, 7, 1)).toBe(true); // same epoch: the owner moves on
      expect(await s.saveCursor('g', 2, 3, 4)).toBe(true);
      expect(await s.saveCursor('other', 0, 99, 1)).toBe(true);
      expect(await s.loadCursor('g', 0)).toBe(7);
      expect(await s.loadCursors('g')).toEqual(
        new Map([
          [0, 7],
          [2, 3],
        ]),
      );
      // A newer owner takes over; the former one is fenced and changes nothing.
      expect(await s.saveCursor('g', 0, 8, 2)).toBe(true);
      expect(await s.saveCursor('g', 0, 50, 1)).toBe(false);
      expect(await s.loadCursor('g', 0)).toBe(8);
      expect(await s.loadCursor('other', 0)).toBe(99);
    });

    it('looks a group up by name, and lets a newer epoch move a cursor back (a group reset) while fencing the owner', async () => {
      const s = await factory();
      expect(await s.getGroup('reset-me')).toBeNull();
      const created = await s.register('reset-me', 'orders.*', new Map([[1, 4]]));
      expect(await s.getGroup('reset-me')).toEqual(created);
      expect(await s.saveCursor('reset-me', 0, 30, 3)).toBe(true);
      // An operator's reset writes above the owner's epoch: the cursor goes back, the owner's next save is refused.
      expect(await s.saveCursor('reset-me', 0, 10, 4)).toBe(true);
      expect(await s.saveCursor('reset-me', 0, 31, 3)).toBe(false);
      expect(await s.loadCursor('reset-me', 0)).toBe(10);
      // The next owner takes the lease at that epoch and carries on from the reset position.
      expect(await s.saveCursor('reset-me', 0, 12, 4)).toBe(true);
      expect(await s.loadCursors('reset-me')).toEqual(
        new Map([
          [0, 12],
          [1, 4],
        ]),
      );
      await s.deleteGroup('reset-me');
      expect(await s.getGroup('reset-me')).toBeNull();
    });

    it('keeps a growing delivered mark per partition, fenced with the cursor', async () => {
      const s = await factory();
      await s.register('m', 'orders.*', new Map([[0, 4]]));
      expect(await s.loadDeliveries('m', 0, 0)).toEqual({ deliveredUpTo: 0, counts: new Map() });
      // A mark before any cursor save leaves the cursor where it was.
      expect(await s.markDelivered('m', 0, 10, 1)).toBe(true);
      expect(await s.loadCursor('m', 0)).toBe(4);
      expect(await s.loadCursors('m')).toEqual(new Map([[0, 4]]));
      expect(await s.markDelivered('m', 0, 7, 1)).toBe(true); // never moves back
      expect((await s.loadDeliveries('m', 0, 0)).deliveredUpTo).toBe(10);
      expect(await s.saveCursor('m', 0, 6, 1)).toBe(true);
      expect((await s.loadDeliveries('m', 0, 6)).deliveredUpTo).toBe(10);
      // A new owner (epoch 2) fences the old one's marks, and its cursor saves keep the mark.
      expect(await s.markDelivered('m', 0, 20, 2)).toBe(true);
      expect(await s.markDelivered('m', 0, 30, 1)).toBe(false);
      expect(await s.saveCursor('m', 0, 12, 2)).toBe(true);
      expect(await s.loadDeliveries('m', 0, 12)).toEqual({ deliveredUpTo: 20, counts: new Map() });
      expect(await s.loadCursor('m', 0)).toBe(12);
      expect((await s.loadDeliveries('m', 1, 0)).deliveredUpTo).toBe(0);
    });

    it('records delivery counts that only grow, loads those after a sequence, and forgets settled ones', async () => {
      const s = await factory();
      await s.recordDeliveries('d', 0, 'e1', 5, 2);
      await s.recordDeliveries('d', 0, 'e1', 5, 1); // a stale write cannot lower it
      await s.recordDeliveries('d', 0, 'e2', 8, 3);
      await s.recordDeliveries('d', 1, 'e3', 5, 4);
      await s.recordDeliveries('other', 0, 'e4', 9, 2);
      expect((await s.loadDeliveries('d', 0, 0)).counts).toEqual(
        new Map([
          ['e1', 2],
          ['e2', 3],
        ]),
      );
      expect((await s.loadDeliveries('d', 0, 5)).counts).toEqual(new Map([['e2', 3]]));
      expect((await s.loadDeliveries('d', 1, 0)).counts).toEqual(new Map([['e3', 4]]));
      await s.forgetDeliveries('d', 0, 5);
      expect((await s.loadDeliveries('d', 0, 0)).counts).toEqual(new Map([['e2', 3]]));
      expect((await s.loadDeliveries('d', 1, 0)).counts).toEqual(new Map([['e3', 4]]));
      expect((await s.loadDeliveries('other', 0, 0)).counts).toEqual(new Map([['e4', 2]]));
    });

    it('refuses malformed cursors with a typed error', async () => {
      const s = await factory();
      for (const [p, seq, epoch] of [
        [-1, 1, 1],
        [0, -1, 1],
        [0, 1.5, 1],
        [0, 1, Number.NaN],
      ] as const) {
        const err = await s.saveCursor('g', p, seq, epoch).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(GroupStoreError);
        expect(err).toMatchObject({ code: 'INVALID_ARGUMENT' });
      }
    });

    it('keeps dead letters, oldest first, one per event, with the reason bounded', async () => {
      const s = await factory();
      const a = event(0, 1);
      const b = event(1, 2);
      await s.deadLetter('g', a, 3, 'ack timeout');
      await new Promise((r) => setTimeout(r, 5));
      await s.deadLetter('g', b, 5, 'x'.repeat(MAX_REASON_LENGTH + 50));
      await s.deadLetter('other', event(0, 3), 1, 'nacked');
      const list = await s.listDeadLetters('g', 10);
      expect(list.map((d) => d.event.id)).toEqual([a.id, b.id]);
      expect(list[0]).toMatchObject({ group: 'g', deliveries: 3, reason: 'ack timeout', status: 'dead' });
      expect(list[0]?.event).toEqual(a);
      expect(list[0]?.deadAt).toBeInstanceOf(Date);
      expect(list[1]?.reason).toHaveLength(MAX_REASON_LENGTH);
      expect(await s.listDeadLetters('g', 1)).toHaveLength(1);
      expect(await s.countDeadLetters('g')).toBe(2);
      // The same event dead again (after a replay) stays one record, with the latest count.
      await s.deadLetter('g', a, 4, 'nacked');
      expect(await s.countDeadLetters('g')).toBe(2);
      expect((await s.listDeadLetters('g', 10)).find((d) => d.event.id === a.id)).toMatchObject({ deliveries: 4, reason: 'nacked' });
    });

    it('moves a dead letter through replay: requested once, taken once by its partition, then deleted or dead again', async () => {
      const s = await factory();
      const a = event(2, 1);
      const b = event(3, 2);
      await s.deadLetter('g', a, 5, 'nacked');
      await s.deadLetter('g', b, 5, 'nacked');
      expect(await s.requestReplay('g', 'nope')).toBe(false);
      expect(await s.requestReplay('other', a.id)).toBe(false);
      expect(await s.requestReplay('g', a.id)).toBe(true);
      expect(await s.requestReplay('g', a.id)).toBe(false); // already requested
      expect((await s.listDeadLetters('g', 10)).map((d) => d.status)).toEqual(['replay', 'dead']);
      expect(await s.takeReplays('g', 3, 10)).toEqual([]);
      const taken = await s.takeReplays('g', 2, 10);
      expect(taken).toHaveLength(1);
      expect(taken[0]).toMatchObject({ group: 'g', status: 'replayed', deliveries: 0 });
      expect(taken[0]?.event).toEqual(a);
      expect(await s.takeReplays('g', 2, 10)).toEqual([]);
      // Taken replays are in flight, not waiting for an operator.
      expect(await s.countDeadLetters('g')).toBe(1);
      // Failed again: dead once more, and replayable again.
      await s.resolveReplay('g', a.id, false);
      expect(await s.countDeadLetters('g')).toBe(2);
      expect(await s.requestReplay('g', a.id)).toBe(true);
      await s.takeReplays('g', 2, 10);
      await s.resolveReplay('g', a.id, true);
      expect((await s.listDeadLetters('g', 10)).map((d) => d.event.id)).toEqual([b.id]);
      // An ack resolves only a replay in flight: a plain dead letter stays.
      await s.resolveReplay('g', b.id, true);
      expect(await s.countDeadLetters('g')).toBe(1);
    });

    it('deletes a group with its cursors, delivery counts and dead letters; the name can start afresh', async () => {
      const s = await factory();
      await s.register('gone', 'orders.*', new Map([[0, 5]]));
      await s.register('kept', 'orders.*');
      expect(await s.saveCursor('gone', 1, 9, 1)).toBe(true);
      expect(await s.markDelivered('gone', 1, 12, 1)).toBe(true);
      await s.recordDeliveries('gone', 1, 'ev-x', 10, 2);
      await s.deadLetter('gone', event(1, 11), 5, 'nacked');
      await s.deadLetter('kept', event(1, 11), 5, 'nacked');
      expect(await s.saveCursor('kept', 1, 3, 1)).toBe(true);

      expect(await s.deleteGroup('gone')).toBe(true);
      expect(await s.deleteGroup('gone')).toBe(false);
      expect((await s.listGroups(10)).map((g) => g.name)).toEqual(['kept']);
      expect(await s.loadCursors('gone')).toEqual(new Map());
      expect(await s.loadDeliveries('gone', 1, 0)).toEqual({ deliveredUpTo: 0, counts: new Map() });
      expect(await s.countDeadLetters('gone')).toBe(0);
      // Other groups are untouched.
      expect(await s.countDeadLetters('kept')).toBe(1);
      expect(await s.loadCursor('kept', 1)).toBe(3);
      // Registered again, the name is a new group with its own start.
      const again = await s.register('gone', 'billing.*');
      expect(again).toMatchObject({ filter: 'billing.*', start: new Map() });
      expect(await s.loadCursor('gone', 0)).toBe(0);
    });

    it('returns copies: changing a result does not change the store', async () => {
      const s = await factory();
      const a = event(0, 1);
      await s.deadLetter('g', a, 2, 'nacked');
      const [first] = await s.listDeadLetters('g', 10);
      (first?.event.payload as { seq: number }).seq = 999;
      first!.event.headers['x'] = 'y';
      const [again] = await s.listDeadLetters('g', 10);
      expect(again?.event).toEqual(a);
      const cursors = await s.loadCursors('g');
      cursors.set(0, 42);
      expect(await s.loadCursor('g', 0)).toBe(0);
    });
  });
}
