import { MongoEventLog, migrateEventLog } from '../internal/eventlog/index.js';
import { MAX_KEY_LENGTH, OutboxError, createOutbox, migrateOutbox, partitionOf, type PendingDocument } from '../internal/outbox/index.js';
import { itWith } from './harness/capabilities.js';
import { useTestDb } from './harness/db.js';

const t = useTestDb('outbox');

describe('partitionOf', () => {
  it('is FNV-1a of the UTF-8 key modulo P, stable across releases', () => {
    // Reference values: FNV-1a 32-bit of "", "a", "foobar" are 0x811c9dc5, 0xe40c292c, 0xbf9cf968.
    expect(partitionOf('', 2 ** 31)).toBe(0x811c9dc5 % 2 ** 31);
    expect(partitionOf('a', 1_000_003)).toBe(0xe40c292c % 1_000_003);
    expect(partitionOf('foobar', 16)).toBe(0xbf9cf968 % 16);
    expect(partitionOf('ключ', 16)).toBe(partitionOf('ключ', 16));
    for (let i = 0; i < 200; i++) expect(partitionOf(`k${i}`, 7)).toBeLessThan(7);
  });
});

describe('Outbox.add', () => {
  beforeAll(async () => {
    await migrateOutbox(t.db, { partitions: 8 });
    await migrateOutbox(t.db, { partitions: 8 }); // idempotent
    await migrateEventLog(t.db);
  });

  /** Documents of every partition collection of outbox `name` (P = 16 unless given). */
  const stored = async (name = 'outbox', partitions = 16): Promise<PendingDocument[]> => {
    const all = await Promise.all(
      Array.from({ length: partitions }, (_, p) => t.db.collection<PendingDocument>(`${name}_p${p}`).find({}).toArray()),
    );
    return all.flat();
  };

  it('creates one collection per partition with its order index, and the dead collection', async () => {
    const names = new Set((await t.db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name));
    for (let p = 0; p < 8; p++) expect(names.has(`outbox_p${p}`)).toBe(true);
    expect(names.has('outbox_p8')).toBe(false);
    expect(names.has('outbox_dead')).toBe(true);
    expect((await t.db.collection('outbox_p3').indexes()).map((i) => i.name)).toContain('ts');
  });

  it('stores a pending message with a stable id, partition and creation time', async () => {
    const outbox = createOutbox(t.db, { partitions: 8 });
    const r = await outbox.add({ topic: 'orders.created', key: 'order-1', payload: { total: 42 }, headers: { trace: 'abc' } });
    expect(r.partition).toBe(partitionOf('order-1', 8));
    expect(r.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const doc = await t.db.collection<PendingDocument>(`outbox_p${r.partition}`).findOne({ _id: r.id });
    expect(doc).toMatchObject({
      topic: 'orders.created',
      key: 'order-1',
      payload: { total: 42 },
      headers: { trace: 'abc' },
    });
    expect(doc?.createdAt.getTime()).toBe(r.createdAt.getTime());
  });

  it("partitions by id when there is no key, and keeps a writer's order in ts", async () => {
    const outbox = createOutbox(t.db, { partitions: 4 });
    const receipts = await outbox.addMany(Array.from({ length: 20 }, (_, i) => ({ topic: 'audit.log', payload: i })));
    for (const r of receipts) expect(r.partition).toBe(partitionOf(r.id, 4));
    const docs = (await stored('outbox', 4)).filter((d) => receipts.some((r) => r.id === d._id));
    expect(docs).toHaveLength(20);
    for (const r of receipts) expect(await t.db.collection(`outbox_p${r.partition}`).countDocuments({ _id: r.id as never })).toBe(1);
    const ts = new Map(docs.map((d) => [d._id, d.ts]));
    const ordered = receipts.map((r) => ts.get(r.id) as number);
    expect([...ordered].sort((a, b) => a - b)).toEqual(ordered);
    expect(new Set(ordered).size).toBe(ordered.length);
  });

  const bad: Array<[string, unknown, string]> = [
    ['an empty segment', { topic: 'orders..created', payload: 1 }, 'INVALID_TOPIC'],
    ['a wildcard in the topic', { topic: 'orders.*', payload: 1 }, 'INVALID_TOPIC'],
    ['a multi-level wildcard', { topic: 'orders.**', payload: 1 }, 'INVALID_TOPIC'],
    ['a too-long topic', { topic: 'a'.repeat(201), payload: 1 }, 'INVALID_TOPIC'],
    ['a non-string topic', { topic: 7, payload: 1 }, 'INVALID_TOPIC'],
    ['a missing payload', { topic: 'a.b' }, 'INVALID_PAYLOAD'],
    ['an oversized payload', { topic: 'a.b', payload: 'x'.repeat(2048) }, 'PAYLOAD_TOO_LARGE'],
    ['a too-long key', { topic: 'a.b', key: 'k'.repeat(MAX_KEY_LENGTH + 1), payload: 1 }, 'INVALID_KEY'],
    ['a non-string header', { topic: 'a.b', payload: 1, headers: { n: 1 } }, 'INVALID_HEADERS'],
    ['an operator-like header name', { topic: 'a.b', payload: 1, headers: { $where: 'x' } }, 'INVALID_HEADERS'],
    ['a malformed id', { id: 'has space', topic: 'a.b', payload: 1 }, 'INVALID_ID'],
  ];
  it.each(bad)('rejects %s with a typed error and writes nothing', async (_what, input, code) => {
    const outbox = createOutbox(t.db, { maxPayloadBytes: 1024, collection: 'outbox_bad' });
    const good = { topic: 'ok.topic', payload: { fine: true } };
    const err = await outbox.addMany([good, input as never]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutboxError);
    expect(err).toMatchObject({ code, index: 1 });
    expect(await stored('outbox_bad')).toHaveLength(0);
  });

  it('refuses a second message with the same id, keeping the first', async () => {
    const outbox = createOutbox(t.db);
    await outbox.add({ id: 'order-7:created', topic: 'orders.created', payload: { v: 1 } });
    await expect(outbox.add({ id: 'order-7:created', topic: 'orders.created', payload: { v: 2 } })).rejects.toMatchObject({
      code: 'DUPLICATE_ID',
      index: 0,
    });
    const docs = (await stored()).filter((d) => d._id === 'order-7:created');
    expect(docs).toEqual([expect.objectContaining({ payload: { v: 1 } })]);
  });

  it('refuses an id that was already published (it is in the event log)', async () => {
    const outbox = createOutbox(t.db, { collection: 'outbox_arch' });
    await new MongoEventLog(t.db).append(0, 1, [
      { id: 'pay-1', topic: 'pay.done', key: null, payload: 1, headers: {}, createdAt: new Date() },
    ]);
    await expect(outbox.add({ id: 'pay-1', topic: 'pay.done', payload: 1 })).rejects.toMatchObject({ code: 'DUPLICATE_ID', index: 0 });
    expect(await stored('outbox_arch')).toHaveLength(0);
  });

  describe('a batch is all or nothing', () => {
    const msg = (id: string, key = id) => ({ id, topic: 'batch.t', key, payload: { id } });

    it('refuses an id repeated within the batch, naming the repeat', async () => {
      const outbox = createOutbox(t.db, { collection: 'outbox_b1' });
      const err = await outbox.addMany([msg('a'), msg('b'), msg('a')]).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'DUPLICATE_ID', index: 2 });
      expect(await stored('outbox_b1')).toHaveLength(0);
    });

    it('refuses an id that is still pending, writing none of the batch', async () => {
      const outbox = createOutbox(t.db, { collection: 'outbox_b2' });
      await outbox.add(msg('taken'));
      const err = await outbox.addMany([msg('fresh-1'), msg('fresh-2', 'elsewhere'), msg('taken')]).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'DUPLICATE_ID', index: 2 });
      expect((await stored('outbox_b2')).map((d) => d._id)).toEqual(['taken']);
    });

    it('refuses an id that was published, writing none of the batch', async () => {
      const outbox = createOutbox(t.db, { collection: 'outbox_b3' });
      await new MongoEventLog(t.db).append(1, 1, [
        { id: 'published-1', topic: 'batch.t', key: null, payload: 1, headers: {}, createdAt: new Date() },
      ]);
      const err = await outbox.addMany([msg('new-1'), msg('published-1')]).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'DUPLICATE_ID', index: 1 });
      expect(await stored('outbox_b3')).toHaveLength(0);
    });

    it('refuses more than the batch bound with a typed error', async () => {
      const outbox = createOutbox(t.db, { collection: 'outbox_b4' });
      const many = Array.from({ length: 10_001 }, (_, i) => ({ topic: 'batch.t', payload: i }));
      await expect(outbox.addMany(many)).rejects.toMatchObject({ code: 'BATCH_TOO_LARGE' });
      expect(await stored('outbox_b4')).toHaveLength(0);
    });
  });

  it('refuses invalid options and aborted calls', async () => {
    expect(() => createOutbox(t.db, { partitions: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }) as Error);
    const outbox = createOutbox(t.db);
    const ac = new AbortController();
    ac.abort();
    await expect(outbox.add({ topic: 'a.b', payload: 1 }, { signal: ac.signal })).rejects.toMatchObject({ code: 'ABORTED' });
  });

  itWith('transactions')('writes nothing when the application transaction rolls back', async () => {
    const outbox = createOutbox(t.db, { collection: 'outbox_tx' });
    const session = t.client.startSession();
    try {
      session.startTransaction();
      await t.db.collection('orders').insertOne({ _id: 'rolled-back' as never }, { session });
      await outbox.add({ topic: 'orders.created', key: 'rolled-back', payload: {} }, { session });
      await session.abortTransaction();
    } finally {
      await session.endSession();
    }
    expect(await stored('outbox_tx')).toHaveLength(0);
    expect(await t.db.collection('orders').countDocuments({ _id: 'rolled-back' as never })).toBe(0);
  });

  itWith('transactions')('commits the message with the business document', async () => {
    const outbox = createOutbox(t.db, { collection: 'outbox_tx' });
    const session = t.client.startSession();
    try {
      await session.withTransaction(async () => {
        await t.db.collection('orders').insertOne({ _id: 'committed' as never }, { session });
        await outbox.add({ topic: 'orders.created', key: 'committed', payload: {} }, { session });
      });
    } finally {
      await session.endSession();
    }
    expect((await stored('outbox_tx')).filter((d) => d.key === 'committed')).toHaveLength(1);
  });

  itWith('transactions')('refuses a duplicate id inside the transaction at once, and the whole transaction rolls back', async () => {
    const outbox = createOutbox(t.db, { collection: 'outbox_tx_dup' });
    await outbox.add({ id: 'order-7', topic: 'orders.created', key: 'order-7', payload: { first: true } });
    const session = t.client.startSession();
    const started = Date.now();
    try {
      const err = await session
        .withTransaction(async () => {
          await t.db.collection('orders').insertOne({ _id: 'dup-in-tx' as never }, { session });
          // Same id, other key: another partition, so only the id check can refuse it.
          await outbox.add({ id: 'order-7', topic: 'orders.created', key: 'other-key', payload: { first: false } }, { session });
        })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OutboxError);
      expect(err).toMatchObject({ code: 'DUPLICATE_ID' });
    } finally {
      await session.endSession();
    }
    // Answered at once: no retry loop inside the driver's withTransaction (its limit is 120 s).
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await t.db.collection('orders').countDocuments({ _id: 'dup-in-tx' as never })).toBe(0);
    const pending = await stored('outbox_tx_dup');
    expect(pending.map((d) => [d._id, d.key, d.payload])).toEqual([['order-7', 'order-7', { first: true }]]);
  });

  itWith('transactions')('commits a batch across partitions with the business document, or nothing of it', async () => {
    const outbox = createOutbox(t.db, { collection: 'outbox_tx_batch' });
    const batch = Array.from({ length: 40 }, (_, i) => ({ topic: 'orders.line', key: `line-${i}`, payload: { i } }));
    const session = t.client.startSession();
    try {
      await session.withTransaction(async () => {
        await t.db.collection('orders').insertOne({ _id: 'batch-ok' as never }, { session });
        await outbox.addMany(batch, { session });
      });
      const failed = await session
        .withTransaction(async () => {
          await t.db.collection('orders').insertOne({ _id: 'batch-failed' as never }, { session });
          await outbox.addMany(batch, { session });
          throw new Error('the application changed its mind');
        })
        .catch((e: unknown) => e);
      expect(failed).toMatchObject({ message: 'the application changed its mind' });
    } finally {
      await session.endSession();
    }
    const pending = await stored('outbox_tx_batch');
    expect(pending).toHaveLength(40);
    expect(new Set(pending.map((d) => partitionOf(d.key ?? d._id, 16))).size).toBeGreaterThan(1);
    expect(await t.db.collection('orders').countDocuments({ _id: { $in: ['batch-ok', 'batch-failed'] } as never })).toBe(1);
  });
});
