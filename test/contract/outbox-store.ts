/**
 * Contract suite for the OutboxStore port (the drainer's view of the outbox).
 * Every adapter runs it through `outboxStoreContract(name, factory)`.
 */
import type { OutboxMessageInput, OutboxStore, PendingMessage } from '../../internal/outbox/index.js';
import { partitionOf } from '../../internal/outbox/index.js';

/** A store over a fresh outbox of P = 4 partitions, and the application's writer for it. */
export interface OutboxFixture {
  store: OutboxStore;
  add: (messages: ReadonlyArray<OutboxMessageInput>) => Promise<void>;
}

const P = 4;
const keyIn = (partition: number, tag: string): string => {
  for (let i = 0; ; i++) if (partitionOf(`${tag}-${i}`, P) === partition) return `${tag}-${i}`;
};

/** Registers the OutboxStore contract tests. */
export function outboxStoreContract(name: string, factory: () => Promise<OutboxFixture>): void {
  describe(`OutboxStore contract: ${name}`, () => {
    it('returns a partition’s pending messages in write order, bounded by the limit, partitions apart', async () => {
      const { store, add } = await factory();
      const k0 = keyIn(0, 'a');
      const k1 = keyIn(1, 'b');
      await add(Array.from({ length: 5 }, (_, i) => ({ id: `p0-${i}`, topic: 't.order', key: k0, payload: { i } })));
      await add([{ id: 'p1-0', topic: 't.order', key: k1, payload: {} }]);
      await add(Array.from({ length: 3 }, (_, i) => ({ id: `p0-${5 + i}`, topic: 't.order', key: k0, payload: { i: 5 + i } })));
      const first = await store.pending(0, 6);
      expect(first.map((m) => m.id)).toEqual(['p0-0', 'p0-1', 'p0-2', 'p0-3', 'p0-4', 'p0-5']);
      expect(first[0]).toMatchObject({ topic: 't.order', key: k0, partition: 0, payload: { i: 0 }, attempts: 0 });
      expect((await store.pending(1, 10)).map((m) => m.id)).toEqual(['p1-0']);
      expect(await store.pending(2, 10)).toEqual([]);
    });

    it('removes exactly the messages given, once', async () => {
      const { store, add } = await factory();
      const k = keyIn(2, 'c');
      await add(Array.from({ length: 4 }, (_, i) => ({ id: `r-${i}`, topic: 't.rm', key: k, payload: i })));
      const batch = await store.pending(2, 2);
      expect(await store.remove(2, batch)).toBe(2);
      expect(await store.remove(2, batch)).toBe(0);
      expect((await store.pending(2, 10)).map((m) => m.id)).toEqual(['r-2', 'r-3']);
      expect(await store.backlog(2)).toMatchObject({ pending: 2, dead: 0 });
    });

    it('counts failures, moves a dead message out of its partition, and requeues it at the end', async () => {
      const { store, add } = await factory();
      const k = keyIn(3, 'd');
      await add(['x', 'y', 'z'].map((id) => ({ id, topic: 't.dead', key: k, payload: id })));
      const [x] = (await store.pending(3, 1)) as [PendingMessage];
      await store.recordFailure(x, 'boom 1', false);
      expect(await store.get('x', 3)).toMatchObject({ status: 'pending', attempts: 1 });
      const [again] = (await store.pending(3, 1)) as [PendingMessage];
      await store.recordFailure(again, 'boom 2', true);
      expect((await store.pending(3, 10)).map((m) => m.id)).toEqual(['y', 'z']);
      expect(await store.get('x')).toMatchObject({ status: 'dead', attempts: 2, lastError: 'boom 2', partition: 3 });
      expect((await store.listDead(3, 10)).map((m) => m.id)).toEqual(['x']);
      expect(await store.backlog(3)).toMatchObject({ pending: 2, dead: 1 });
      expect(await store.requeue(['x', 'unknown'])).toBe(1);
      expect(await store.requeue(['x'])).toBe(0);
      expect((await store.pending(3, 10)).map((m) => m.id)).toEqual(['y', 'z', 'x']);
      expect(await store.get('x')).toMatchObject({ status: 'pending', attempts: 0 });
      expect(await store.listDead(3, 10)).toEqual([]);
    });

    it('reports the backlog of a partition with its oldest pending message', async () => {
      const { store, add } = await factory();
      expect(await store.backlog(1)).toEqual({ pending: 0, oldestPendingAt: null, dead: 0 });
      const k = keyIn(1, 'e');
      const before = Date.now();
      await add([{ topic: 't.b', key: k, payload: 1 }]);
      const b = await store.backlog(1);
      expect(b.pending).toBe(1);
      expect(b.oldestPendingAt?.getTime()).toBeGreaterThanOrEqual(before - 1000);
      expect(await store.get('no-such-id')).toBeNull();
    });
  });
}
