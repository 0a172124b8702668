/**
 * Contract suite for the EventLog port. Every adapter runs it through
 * `eventLogContract(name, factory)`; `factory` returns two independent handles
 * on one fresh log (two processes' views), so fencing between writers is tested.
 */
import { EventLogError, type EventInput, type EventLog } from '../../internal/eventlog/index.js';

/** Two views of one empty log, as two drainer processes would have. */
export interface EventLogPair {
  a: EventLog;
  b: EventLog;
}

let counter = 0;
function ev(topic: string, key: string | null, n: number): EventInput {
  counter++;
  return { id: `e-${Date.now()}-${counter}-${n}`, topic, key, payload: { n }, headers: { h: String(n) }, createdAt: new Date() };
}

/** Registers the EventLog contract tests. */
export function eventLogContract(name: string, factory: () => Promise<EventLogPair>): void {
  describe(`EventLog contract: ${name}`, () => {
    it('assigns gap-free sequences from 1 and reads them back in order', async () => {
      const { a } = await factory();
      await a.claim(3, 1);
      const first = await a.append(3, 1, [ev('orders.created', 'k1', 1), ev('orders.created', 'k2', 2)]);
      const second = await a.append(3, 1, [ev('orders.paid', 'k1', 3)]);
      expect(first.appended.map((e) => e.seq)).toEqual([1, 2]);
      expect(second.appended.map((e) => e.seq)).toEqual([3]);
      expect(second.head).toBe(3);
      const all = await a.read({ partition: 3, limit: 100 });
      expect(all.map((e) => [e.seq, (e.payload as { n: number }).n])).toEqual([
        [1, 1],
        [2, 2],
        [3, 3],
      ]);
      expect(all[0]?.headers).toEqual({ h: '1' });
      expect(await a.read({ partition: 3, afterSeq: 1, limit: 1 })).toHaveLength(1);
      expect((await a.read({ partition: 3, topic: 'orders.paid', limit: 10 })).map((e) => e.seq)).toEqual([3]);
      expect(await a.head(3)).toEqual({ seq: 3, epoch: 1 });
    });

    it('appends a message id once, reporting the second append as a duplicate', async () => {
      const { a, b } = await factory();
      const batch = [ev('t.a', 'x', 1), ev('t.a', 'x', 2)];
      await a.append(0, 1, batch);
      // A new holder that re-reads the same still-pending messages must not append them again.
      const again = await b.append(0, 2, [...batch, ev('t.a', 'x', 3)]);
      expect(again.duplicates.sort()).toEqual(batch.map((e) => e.id).sort());
      expect(again.appended.map((e) => e.seq)).toEqual([3]);
      const all = await b.read({ partition: 0, limit: 10 });
      expect(all.map((e) => e.seq)).toEqual([1, 2, 3]);
      expect(new Set(all.map((e) => e.id)).size).toBe(3);
    });

    it('fences a former holder: after a newer claim its appends fail and stay invisible', async () => {
      const { a, b } = await factory();
      await a.append(1, 1, [ev('t.f', 'k', 1)]);
      await b.claim(1, 2);
      const stale = ev('t.f', 'k', 2);
      await expect(a.append(1, 1, [stale])).rejects.toMatchObject({ code: 'FENCED' });
      await expect(a.claim(1, 1)).rejects.toBeInstanceOf(EventLogError);
      expect(await b.get(stale.id)).toBeNull();
      const fresh = await b.append(1, 2, [ev('t.f', 'k', 3)]);
      expect(fresh.appended.map((e) => e.seq)).toEqual([2]);
      expect((await b.read({ partition: 1, limit: 10 })).map((e) => e.seq)).toEqual([1, 2]);
    });

    it('keeps one gap-free, ordered copy when writers race on the same partition', async () => {
      const { a, b } = await factory();
      // Two holders that both believe they own epoch 1 (a lease race on a server without atomic
      // read-modify-write): the unique indexes alone must keep the log right.
      const batch = Array.from({ length: 40 }, (_, i) => ev('t.r', `k${i % 3}`, i + 1));
      await a.claim(2, 1);
      const [ra, rb] = await Promise.all([a.append(2, 1, batch.slice(0, 25)), b.append(2, 1, batch)]);
      const all = await a.read({ partition: 2, limit: 100 });
      expect(all.map((e) => e.seq)).toEqual(batch.map((_, i) => i + 1));
      expect(all.map((e) => (e.payload as { n: number }).n)).toEqual(batch.map((_, i) => i + 1));
      // Every input is accounted for exactly once by each writer.
      expect([...ra.appended.map((e) => e.id), ...ra.duplicates].sort()).toEqual(
        batch
          .slice(0, 25)
          .map((e) => e.id)
          .sort(),
      );
      expect([...rb.appended.map((e) => e.id), ...rb.duplicates].sort()).toEqual(batch.map((e) => e.id).sort());
      expect(ra.appended.length + rb.appended.length).toBe(40);
    });

    it('returns the latest event for a topic and key', async () => {
      const { a } = await factory();
      expect(await a.latestByKey('t.k', 'nobody')).toBeNull();
      await a.append(4, 1, [ev('t.k', 'cust-1', 1), ev('t.k', 'cust-2', 2), ev('t.k', 'cust-1', 3), ev('t.other', 'cust-1', 4)]);
      const latest = await a.latestByKey('t.k', 'cust-1');
      expect(latest?.seq).toBe(3);
      expect(latest?.payload).toEqual({ n: 3 });
    });

    it('refuses malformed ranges and epochs with typed errors', async () => {
      const { a } = await factory();
      await expect(a.read({ partition: -1, limit: 10 })).rejects.toMatchObject({ code: 'INVALID_RANGE' });
      await expect(a.read({ partition: 0, limit: 0 })).rejects.toMatchObject({ code: 'INVALID_RANGE' });
      await expect(a.read({ partition: 0, afterSeq: 1.5, limit: 5 })).rejects.toMatchObject({ code: 'INVALID_RANGE' });
      await expect(a.claim(0, 0)).rejects.toMatchObject({ code: 'INVALID_EPOCH' });
    });
  });
}
