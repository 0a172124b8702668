/**
 * Contract suite for the EventLog port. Every adapter runs it through
 * `eventLogContract(name, factory)`; `factory` returns two independent handles
 * on one fresh log (two processes' views), so fencing between writers is tested.
 */
import { EventLogError, type EventInput, type EventLog } from '../../internal/eventlog/index.js';
import { TopicPattern } from '../../internal/topic/index.js';

/** Two views of one empty log, as two drainer processes would have. */
export interface EventLogPair {
  a: EventLog;
  b: EventLog;
  /** Removes one event behind the adapter's back, leaving the hole a broken server or an old version could leave. */
  punchHole(partition: number, seq: number): Promise<void>;
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
      expect((await a.read({ partition: 3, limit: 10, toSeq: 2 })).map((e) => e.seq)).toEqual([1, 2]);
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

    it('re-appends more than one insert chunk of already-logged messages plus new ones exactly once, gap-free and in order', async () => {
      const { a, b } = await factory();
      const logged = Array.from({ length: 230 }, (_, i) => ev('t.crash', `k${i % 7}`, i + 1));
      await a.claim(6, 1);
      await a.append(6, 1, logged);
      // The holder died before removing them from the outbox: the next holder reads them again, with new ones behind.
      const fresh = Array.from({ length: 11 }, (_, i) => ev('t.crash', `k${i % 7}`, 231 + i));
      await b.claim(6, 2);
      const r = await b.append(6, 2, [...logged, ...fresh]);
      expect(r.duplicates).toHaveLength(230);
      expect(r.appended.map((e) => e.seq)).toEqual(fresh.map((_, i) => 231 + i));
      const all = await b.read({ partition: 6, limit: 1000 });
      expect(all.map((e) => e.seq)).toEqual(Array.from({ length: 241 }, (_, i) => i + 1));
      expect(all.map((e) => (e.payload as { n: number }).n)).toEqual(Array.from({ length: 241 }, (_, i) => i + 1));
    });

    it('skips an id logged in another partition in the middle of a batch, keeping the rest contiguous and in order', async () => {
      const { a } = await factory();
      const reused = ev('t.reuse', 'x', 0);
      await a.append(7, 1, [reused]);
      const before = Array.from({ length: 50 }, (_, i) => ev('t.reuse', 'k', i + 1));
      const after = Array.from({ length: 60 }, (_, i) => ev('t.reuse', 'k', 51 + i));
      await a.claim(8, 1);
      const r = await a.append(8, 1, [...before, reused, ...after]);
      expect(r.duplicates).toEqual([reused.id]);
      expect(r.appended.map((e) => e.seq)).toEqual(Array.from({ length: 110 }, (_, i) => i + 1));
      const all = await a.read({ partition: 8, limit: 1000 });
      expect(all.map((e) => (e.payload as { n: number }).n)).toEqual(Array.from({ length: 110 }, (_, i) => i + 1));
    });

    it('appends after what another writer added since its claim, never above an empty slot', async () => {
      const { a, b } = await factory();
      await b.claim(9, 1);
      // A writer that shares the epoch (a lease race where read-modify-write is not atomic) moves the head.
      await a.append(
        9,
        1,
        Array.from({ length: 10 }, (_, i) => ev('t.stale', 'k', i + 1)),
      );
      const r = await b.append(
        9,
        1,
        Array.from({ length: 5 }, (_, i) => ev('t.stale', 'k', 11 + i)),
      );
      expect(r.appended.map((e) => e.seq)).toEqual([11, 12, 13, 14, 15]);
      expect((await b.read({ partition: 9, limit: 100 })).map((e) => e.seq)).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    });

    it('reports which ids are present and checks the fence without writing', async () => {
      const { a, b } = await factory();
      const e = ev('t.present', null, 1);
      await a.claim(10, 3);
      await a.append(10, 3, [e]);
      expect(await b.present([e.id, 'absent-id'])).toEqual(new Set([e.id]));
      expect(await b.present([e.id])).toEqual(new Set([e.id]));
      expect(await b.present([])).toEqual(new Set());
      await expect(a.checkFence(10, 3)).resolves.toBeUndefined();
      await b.claim(10, 4);
      await expect(a.checkFence(10, 3)).rejects.toMatchObject({ code: 'FENCED' });
    });

    it('finds a hole, refuses to fill it while it may still be landing, then fills it with gap events readers step over', async () => {
      const pair = await factory();
      const { a } = pair;
      await a.claim(11, 1);
      await a.append(
        11,
        1,
        Array.from({ length: 6 }, (_, i) => ev('t.hole', 'k', i + 1)),
      );
      await pair.punchHole(11, 3);
      await pair.punchHole(11, 4);
      expect(await a.findGap(11, 1)).toBeNull();
      expect(await a.findGap(11, 2)).toMatchObject({ partition: 11, from: 3, to: 4 });
      await expect(a.repairGap(11, 2, { minAgeMs: 3_600_000 })).rejects.toMatchObject({ code: 'GAP_TOO_RECENT' });
      expect(await a.repairGap(11, 2, { minAgeMs: 0 })).toMatchObject({ from: 3, to: 4 });
      expect(await a.findGap(11, 2)).toBeNull();
      const all = await a.read({ partition: 11, limit: 100 });
      expect(all.map((e) => [e.seq, e.gap === true])).toEqual([
        [1, false],
        [2, false],
        [3, true],
        [4, true],
        [5, false],
        [6, false],
      ]);
      // Filled once: a second repair finds nothing to do.
      expect(await a.repairGap(11, 2, { minAgeMs: 0 })).toBeNull();
    });

    it("keeps readers' stall reports until they clear them", async () => {
      const { a, b } = await factory();
      const since = new Date(Date.now() - 60_000);
      await a.reportStall(12, 'gw-1', { seq: 41, since });
      await a.reportStall(13, 'gw-1', { seq: 7, since: new Date() });
      const reports = await b.stalls();
      expect(reports.filter((r) => r.partition >= 12).map((r) => [r.partition, r.seq, r.reporter])).toEqual([
        [12, 41, 'gw-1'],
        [13, 7, 'gw-1'],
      ]);
      await a.reportStall(12, 'gw-1', null);
      expect((await b.stalls()).filter((r) => r.partition >= 12).map((r) => r.partition)).toEqual([13]);
    });

    it('returns the latest event for a topic and key', async () => {
      const { a } = await factory();
      expect(await a.latestByKey('t.k', 'nobody')).toBeNull();
      await a.append(4, 1, [ev('t.k', 'cust-1', 1), ev('t.k', 'cust-2', 2), ev('t.k', 'cust-1', 3), ev('t.other', 'cust-1', 4)]);
      const latest = await a.latestByKey('t.k', 'cust-1');
      expect(latest?.seq).toBe(3);
      expect(latest?.payload).toEqual({ n: 3 });
    });

    it('finds the last event of a partition published before a time (time-based positions)', async () => {
      const { a, b } = await factory();
      const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
      const before = new Date(Date.now() - 1_000);
      await a.append(9, 1, [ev('t.time', 'k', 1), ev('t.time', 'k', 2)]);
      await pause(20);
      const between = new Date();
      await pause(20);
      await a.append(9, 1, [ev('t.time', 'k', 3)]);
      const [, second, third] = await b.read({ partition: 9, limit: 10 });
      expect(await b.seqBefore(9, before)).toBe(0);
      // One append shares one time: the higher sequence of the two, so a reader after it misses neither.
      expect(second?.publishedAt.getTime()).toBeLessThan(between.getTime());
      expect(await b.seqBefore(9, between)).toBe(2);
      // Strictly before: an event published at `at` is read by whoever starts after the answer.
      expect(await b.seqBefore(9, third!.publishedAt)).toBe(2);
      expect(await b.seqBefore(9, new Date(third!.publishedAt.getTime() + 1))).toBe(3);
      expect(await b.seqBefore(10, new Date())).toBe(0);
      await expect(b.seqBefore(-1, new Date())).rejects.toMatchObject({ code: 'INVALID_RANGE' });
      await expect(b.seqBefore(9, new Date(Number.NaN))).rejects.toMatchObject({ code: 'INVALID_RANGE' });
    });

    it("counts, for several filters at once, the events of each range that match, with the first one's time (gap fillers never match)", async () => {
      const pair = await factory();
      const { a, b } = pair;
      await a.append(5, 1, [ev('orders.created', 'k', 1), ev('billing.paid', 'k', 2), ev('orders.eu.created', 'k', 3)]);
      await a.append(5, 1, [ev('orders.paid', 'k', 4), ev('orders.created', 'k', 5)]);
      await a.append(6, 1, [ev('billing.paid', 'j', 6), ev('orders.created', 'j', 7), ev('orders.created', 'j', 8)]);
      await a.append(7, 1, [ev('billing.paid', 'i', 9)]);
      const all = await b.read({ partition: 5, limit: 10 });
      const ranges = new Map([
        [5, { afterSeq: 1, toSeq: 5 }],
        [6, { afterSeq: 0, toSeq: 2 }],
        [7, { afterSeq: 0, toSeq: 1 }],
        [8, { afterSeq: 0, toSeq: 0 }],
      ]);
      const q = (filter: string, r: ReadonlyMap<number, { afterSeq: number; toSeq: number }> = ranges) => ({
        ranges: r,
        filter: TopicPattern.compile(filter),
      });
      const counts = (m: Map<number, { count: number }> | undefined) =>
        [...(m ?? [])].sort((x, y) => x[0] - y[0]).map(([p, c]) => [p, c.count]);
      const [one, exact, everything, eu, other] = await b.countMatching([
        q('orders.*'),
        q('orders.created'),
        q('**'),
        q('**.eu.*'),
        // Another group further behind in partition 5 only: overlapping ranges are each counted in full.
        q('orders.*', new Map([[5, { afterSeq: 0, toSeq: 5 }]])),
      ]);
      expect(counts(one)).toEqual([
        [5, 2],
        [6, 1],
      ]);
      expect(one?.get(5)?.firstPublishedAt.getTime()).toBe(all[3]?.publishedAt.getTime());
      expect(counts(exact)).toEqual([
        [5, 1],
        [6, 1],
      ]);
      expect(counts(everything)).toEqual([
        [5, 4],
        [6, 2],
        [7, 1],
      ]);
      expect(counts(eu)).toEqual([[5, 1]]);
      expect(counts(other)).toEqual([[5, 3]]);
      expect(other?.get(5)?.firstPublishedAt.getTime()).toBe(all[0]?.publishedAt.getTime());
      expect(await b.countMatching([])).toEqual([]);
      expect(await b.countMatching([q('**', new Map())])).toEqual([new Map()]);
      // A filler written into a hole is never counted.
      await a.append(7, 1, [ev('billing.paid', 'i', 10), ev('billing.paid', 'i', 11)]);
      await pair.punchHole(7, 2);
      expect(await a.repairGap(7, 1, { minAgeMs: 0 })).toMatchObject({ from: 2, to: 2 });
      expect(counts((await b.countMatching([q('**', new Map([[7, { afterSeq: 0, toSeq: 3 }]]))]))[0])).toEqual([[7, 2]]);
      await expect(b.countMatching([q('**', new Map([[0, { afterSeq: 5, toSeq: 2 }]]))])).rejects.toMatchObject({ code: 'INVALID_RANGE' });
    });

    it('refuses malformed ranges and epochs with typed errors', async () => {
      const { a } = await factory();
      await expect(a.read({ partition: -1, limit: 10 })).rejects.toMatchObject({ code: 'INVALID_RANGE' });
      await expect(a.read({ partition: 0, limit: 0 })).rejects.toMatchObject({ code: 'INVALID_RANGE' });
      await expect(a.read({ partition: 0, afterSeq: 1.5, limit: 5 })).rejects.toMatchObject({ code: 'INVALID_RANGE' });
      await expect(a.claim(0, 0)).rejects.toMatchObject({ code: 'INVALID_EPOCH' });
    });

    it('trims a prefix under the epoch, never past the last append, and the sequence goes on after it', async () => {
      const { a } = await factory();
      await a.claim(2, 1);
      await a.append(
        2,
        1,
        [1, 2, 3, 4, 5].map((n) => ev('trim.a', `k${n}`, n)),
      );
      await a.append(
        2,
        1,
        [6, 7, 8].map((n) => ev('trim.a', `k${n}`, n)),
      );
      expect(await a.retention(2)).toEqual({ first: 1, compactedTo: 0, taggedTo: 0 });
      // Asked for more than allowed: the last append (6..8) stays, so the head can always be found.
      const r = await a.trim(2, 1, 100, 100);
      expect(r).toEqual({ first: 6, deleted: 5 });
      expect((await a.retention(2)).first).toBe(6);
      expect((await a.read({ partition: 2, limit: 100 })).map((e) => e.seq)).toEqual([6, 7, 8]);
      expect((await a.scan(2, 0, 100)).map((e) => e.seq)).toEqual([6, 7, 8]);
      expect(await a.trim(2, 1, 6, 100)).toEqual({ first: 6, deleted: 0 });
      const next = await a.append(2, 1, [ev('trim.a', 'k9', 9)]);
      expect(next.appended.map((e) => e.seq)).toEqual([9]);
      expect(await a.head(2)).toMatchObject({ seq: 9 });
    });

    it("reports each event's stored size, payload included, over a bounded range", async () => {
      const { a } = await factory();
      await a.claim(6, 1);
      const at = new Date();
      const sized = (id: string, topic: string, pad: number): EventInput => ({
        id,
        topic,
        key: 'k',
        payload: { pad: 'x'.repeat(pad) },
        headers: {},
        createdAt: at,
      });
      const tag = `${Date.now()}`;
      await a.append(6, 1, [sized(`sz-${tag}-1`, 'size.a', 10), sized(`sz-${tag}-2`, 'size.a', 110), sized(`sz-${tag}-3`, 'size.b', 10)]);
      const sizes = await a.sizes(6, 0, 2);
      expect(sizes.map((s) => [s.seq, s.topic, s.gap])).toEqual([
        [1, 'size.a', false],
        [2, 'size.a', false],
      ]);
      const [one, two] = sizes.map((s) => s.bytes) as [number, number];
      // The whole document: more than the payload, and 100 more characters weigh 100 bytes more.
      expect(one).toBeGreaterThan(100);
      expect(two - one).toBe(100);
      expect((await a.sizes(6, 2, 100)).map((s) => s.topic)).toEqual(['size.b']);
      await expect(a.sizes(6, 0, 0)).rejects.toMatchObject({ code: 'INVALID_RANGE' });
    });

    it('records with a trim the highest trimmed sequence that carried tags, and scans show the tags', async () => {
      const { a } = await factory();
      await a.claim(7, 1);
      const tagged = (n: number, tags?: string[]): EventInput => ({ ...ev('trim.t', null, n), ...(tags ? { tags } : {}) });
      await a.append(7, 1, [tagged(1), tagged(2, ['vip']), tagged(3), tagged(4), tagged(5, ['eu', 'vip']), tagged(6)]);
      await a.append(7, 1, [tagged(7)]);
      expect((await a.scan(7, 0, 6)).map((m) => m.tags ?? [])).toEqual([[], ['vip'], [], [], ['eu', 'vip'], []]);
      // What the caller's scan found below the cut: 2 carries tags. Never above first - 1.
      expect(await a.trim(7, 1, 5, 100, 2)).toEqual({ first: 5, deleted: 4 });
      expect(await a.retention(7)).toEqual({ first: 5, compactedTo: 0, taggedTo: 2 });
      // Nothing tagged below the next cut but what was recorded: it stays, never lower.
      expect(await a.trim(7, 1, 5, 100, 0)).toEqual({ first: 5, deleted: 0 });
      expect((await a.retention(7)).taggedTo).toBe(2);
      expect(await a.trim(7, 1, 7, 100, 5)).toEqual({ first: 7, deleted: 2 });
      expect(await a.retention(7)).toEqual({ first: 7, compactedTo: 0, taggedTo: 5 });
    });

    it('deletes at most maxDelete events per trim call, and the next calls finish', async () => {
      const { a } = await factory();
      await a.claim(1, 1);
      await a.append(
        1,
        1,
        Array.from({ length: 6 }, (_, n) => ev('trim.b', null, n)),
      );
      await a.append(1, 1, [ev('trim.b', null, 7)]);
      expect(await a.trim(1, 1, 7, 4)).toEqual({ first: 7, deleted: 4 });
      expect(await a.trim(1, 1, 7, 4)).toEqual({ first: 7, deleted: 2 });
      expect(await a.trim(1, 1, 7, 4)).toEqual({ first: 7, deleted: 0 });
      expect((await a.read({ partition: 1, limit: 10 })).map((e) => e.seq)).toEqual([7]);
    });

    it('lets a fenced holder trim and compact nothing', async () => {
      const { a, b } = await factory();
      await a.claim(4, 1);
      await a.append(4, 1, [ev('trim.c', 'x', 1), ev('trim.c', 'x', 2)]);
      await a.append(4, 1, [ev('trim.c', 'x', 3)]);
      await b.claim(4, 2);
      await expect(a.trim(4, 1, 3, 100)).rejects.toMatchObject({ code: 'FENCED' });
      const [e] = await a.read({ partition: 4, limit: 1 });
      await expect(a.compact(4, 1, e ? [e] : [], 1)).rejects.toMatchObject({ code: 'FENCED' });
      expect(await b.retention(4)).toEqual({ first: 1, compactedTo: 0, taggedTo: 0 });
      expect(await b.read({ partition: 4, limit: 10 })).toHaveLength(3);
      expect(await b.latestValue('trim.c', 'x')).toBeNull();
    });

    it('keeps the latest event of every key in the snapshot, never an older one, pages it by filter, and purges old tombstones', async () => {
      const { a } = await factory();
      await a.claim(5, 1);
      const { appended } = await a.append(5, 1, [
        ev('state.proc', 'h1', 1),
        ev('state.proc', 'h2', 2),
        ev('state.proc', 'h1', 3),
        { ...ev('state.proc', 'h3', 4), payload: null },
        ev('state.other', 'h1', 5),
        ev('misc.x', 'h9', 6),
      ]);
      const compacted = appended.filter((e) => e.topic.startsWith('state.'));
      await a.compact(5, 1, compacted, 6);
      expect((await a.retention(5)).compactedTo).toBe(6);
      // An older event compacted again (a retry after a crash) never replaces a newer one.
      await a.compact(5, 1, [compacted[0] as LogEventLike], 6);
      expect((await a.latestValue('state.proc', 'h1'))?.payload).toEqual({ n: 3 });
      expect((await a.latestValue('state.proc', 'h2'))?.seq).toBe(2);
      expect(await a.latestValue('misc.x', 'h9')).toBeNull();
      expect((await a.scan(5, 3, 1))[0]).toMatchObject({ seq: 4, tombstone: true });
      const filter = TopicPattern.compile('state.*');
      const page1 = await a.snapshot(filter, undefined, 2);
      expect(page1.map((e) => [e.topic, e.key])).toEqual([
        ['state.other', 'h1'],
        ['state.proc', 'h1'],
      ]);
      const last = page1.at(-1) as LogEventLike;
      const page2 = await a.snapshot(filter, { topic: last.topic, key: last.key as string }, 10);
      expect(page2.map((e) => [e.topic, e.key, e.payload])).toEqual([
        ['state.proc', 'h2', { n: 2 }],
        ['state.proc', 'h3', null],
      ]);
      expect((await a.snapshot(TopicPattern.compile('state.proc'), undefined, 10)).map((e) => e.key)).toEqual(['h1', 'h2', 'h3']);
      expect(await a.purgeTombstones(5, new Date(Date.now() - 60_000), 10)).toBe(0);
      expect(await a.purgeTombstones(5, new Date(Date.now() + 60_000), 10)).toBe(1);
      expect(await a.latestValue('state.proc', 'h3')).toBeNull();
      expect(await a.latestValue('state.proc', 'h1')).not.toBeNull();
    });
  });
}

type LogEventLike = Awaited<ReturnType<EventLog['read']>>[number];
