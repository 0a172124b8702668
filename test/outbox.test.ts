import { MAX_KEY_LENGTH, OutboxError, createOutbox, migrateOutbox, partitionOf, type OutboxDocument } from '../internal/outbox/index.js';
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
    await migrateOutbox(t.db);
    await migrateOutbox(t.db); // idempotent
  });

  it('stores a pending message with a stable id, partition and creation time', async () => {
    const outbox = createOutbox(t.db, { partitions: 8 });
    const r = await outbox.add({ topic: 'orders.created', key: 'order-1', payload: { total: 42 }, headers: { trace: 'abc' } });
    expect(r.partition).toBe(partitionOf('order-1', 8));
    expect(r.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const doc = await t.db.collection<OutboxDocument>('outbox').findOne({ _id: r.id });
    expect(doc).toMatchObject({
      topic: 'orders.created',
      key: 'order-1',
      status: 'pending',
      attempts: 0,
      payload: { total: 42 },
      headers: { trace: 'abc' },
    });
    expect(doc?.createdAt.getTime()).toBe(r.createdAt.getTime());
  });

  it("partitions by id when there is no key, and keeps a writer's order in ts", async () => {
    const outbox = createOutbox(t.db, { partitions: 4 });
    const receipts = await outbox.addMany(Array.from({ length: 20 }, (_, i) => ({ topic: 'audit.log', payload: i })));
    for (const r of receipts) expect(r.partition).toBe(partitionOf(r.id, 4));
    const docs = await t.db
      .collection<OutboxDocument>('outbox')
      .find({ _id: { $in: receipts.map((r) => r.id) } })
      .toArray();
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
    expect(await t.db.collection('outbox_bad').countDocuments()).toBe(0);
  });

  it('refuses a second message with the same id, keeping the first', async () => {
    const outbox = createOutbox(t.db);
    await outbox.add({ id: 'order-7:created', topic: 'orders.created', payload: { v: 1 } });
    await expect(outbox.add({ id: 'order-7:created', topic: 'orders.created', payload: { v: 2 } })).rejects.toMatchObject({
      code: 'DUPLICATE_ID',
    });
    expect(await t.db.collection('outbox').findOne({ _id: 'order-7:created' as never })).toMatchObject({ payload: { v: 1 } });
  });

  it('refuses an id that was already published (moved to the sent archive)', async () => {
    const outbox = createOutbox(t.db, { collection: 'outbox_arch' });
    await t.db.collection('outbox_arch_sent').insertOne({ _id: 'pay-1' as never, topic: 'pay.done', status: 'sent' });
    await expect(outbox.add({ id: 'pay-1', topic: 'pay.done', payload: 1 })).rejects.toMatchObject({ code: 'DUPLICATE_ID' });
    expect(await t.db.collection('outbox_arch').countDocuments()).toBe(0);
  });

  it('refuses invalid options and aborted calls', async () => {
    expect(() => createOutbox(t.db, { partitions: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }));
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
    expect(await t.db.collection('outbox_tx').countDocuments()).toBe(0);
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
    expect(await t.db.collection('outbox_tx').countDocuments({ key: 'committed' })).toBe(1);
  });
});
