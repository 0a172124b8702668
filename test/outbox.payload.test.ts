/**
 * Payload and header shape validation of the outbox library (issue 11.5), and
 * how storage errors are classified, against the real test server.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { MongoBulkWriteError, MongoClient, MongoServerError, ObjectId } from 'mongodb';
import { isDocumentRejectedError, isTransientError } from '../internal/mongo/index.js';
import { MAX_PAYLOAD_DEPTH, OutboxError, createOutbox, migrateOutbox, type PendingDocument } from '../internal/outbox/index.js';
import { testCapabilities } from './harness/capabilities.js';
import { useTestDb } from './harness/db.js';
import { startFaultProxy } from './harness/proxy.js';
import { pendingCount } from './harness/verify.js';

const t = useTestDb('outbox_payload');

function nested(levels: number): unknown {
  let v: unknown = 'leaf';
  for (let i = 0; i < levels; i++) v = i % 2 ? { d: v } : [v];
  return v;
}

beforeAll(async () => {
  await migrateOutbox(t.db, 'outbox_shape');
});

describe('payload and header shape', () => {
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic['self'] = cyclic;
  // 30 levels (within the depth bound) of two references to the same object: 2^30 values when stored.
  let dag: unknown = 'x';
  for (let i = 0; i < 30; i++) dag = { l: dag, r: dag };
  class Money {
    constructor(readonly cents: number) {}
  }

  const bad: Array<[string, unknown, string]> = [
    ['a $-prefixed key', { $set: { admin: true } }, 'INVALID_PAYLOAD'],
    ['a nested $-prefixed key', { order: { items: [{ $where: '1' }] } }, 'INVALID_PAYLOAD'],
    ['a dotted key', { 'a.b': 1 }, 'INVALID_PAYLOAD'],
    ['a key with NUL', { 'a\0b': 1 }, 'INVALID_PAYLOAD'],
    ['nesting deeper than the bound', nested(MAX_PAYLOAD_DEPTH + 1), 'INVALID_PAYLOAD'],
    ['nesting of 150 levels', nested(150), 'INVALID_PAYLOAD'],
    ['a cycle', cyclic, 'INVALID_PAYLOAD'],
    ['an undefined value', { a: undefined }, 'INVALID_PAYLOAD'],
    ['an undefined array element', [1, undefined], 'INVALID_PAYLOAD'],
    ['a sparse array', [1, , 3], 'INVALID_PAYLOAD'], // eslint-disable-line no-sparse-arrays
    ['NaN', { n: Number.NaN }, 'INVALID_PAYLOAD'],
    ['Infinity', { n: Number.POSITIVE_INFINITY }, 'INVALID_PAYLOAD'],
    ['a BigInt', { n: 10n }, 'INVALID_PAYLOAD'],
    ['a function', { f: () => 1 }, 'INVALID_PAYLOAD'],
    ['a symbol value', { s: Symbol('x') }, 'INVALID_PAYLOAD'],
    ['a symbol key', { [Symbol('k')]: 1 }, 'INVALID_PAYLOAD'],
    ['a Map', { m: new Map([['a', 1]]) }, 'INVALID_PAYLOAD'],
    ['a Set', new Set([1]), 'INVALID_PAYLOAD'],
    ['a RegExp', { r: /x/ }, 'INVALID_PAYLOAD'],
    ['a Buffer', { b: Buffer.from('x') }, 'INVALID_PAYLOAD'],
    ['a class instance', { price: new Money(5) }, 'INVALID_PAYLOAD'],
    ['an invalid Date', { at: new Date(Number.NaN) }, 'INVALID_PAYLOAD'],
    ['a shared sub-object repeated past the size bound', dag, 'PAYLOAD_TOO_LARGE'],
  ];
  it.each(bad)('refuses %s before writing anything', async (_what, payload, code) => {
    const outbox = createOutbox(t.db, { collection: 'outbox_shape' });
    const started = Date.now();
    const err = await outbox
      .addMany([
        { topic: 'ok.topic', payload: 1 },
        { topic: 'a.b', payload },
      ])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutboxError);
    expect(err).toMatchObject({ code, index: 1 });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await pendingCount(t.db, 16, 'outbox_shape')).toBe(0);
  });

  it.each([
    ['a $-prefixed header name', { $where: 'x' }],
    ['a dotted header name', { 'a.b': 'x' }],
    ['a header name with NUL', { 'a\0b': 'x' }],
    ['a __proto__ header', JSON.parse('{"__proto__": "x"}') as Record<string, string>],
    ['a non-string header value', { n: 1 } as unknown as Record<string, string>],
  ])('refuses %s', async (_what, headers) => {
    const outbox = createOutbox(t.db, { collection: 'outbox_shape' });
    await expect(outbox.add({ topic: 'a.b', payload: 1, headers })).rejects.toMatchObject({ code: 'INVALID_HEADERS' });
    expect(await pendingCount(t.db, 16, 'outbox_shape')).toBe(0);
  });

  it('stores what it accepts unchanged: JSON values, dates, ObjectIds, the deepest nesting allowed, odd but legal keys', async () => {
    const outbox = createOutbox(t.db, { collection: 'outbox_shape_ok' });
    const id = new ObjectId();
    const at = new Date('2026-11-25T10:00:00.000Z');
    const payload = {
      text: 'ünïcødé ✓',
      n: -12.5,
      zero: 0,
      yes: true,
      none: null,
      // No array directly inside an array: FerretDB 1.x cannot store those (see the gateway test).
      list: [1, 'two', { three: [3] }],
      at,
      id,
      '': 'empty key',
      'a-b c': 'spaces',
      ...JSON.parse('{"__proto__": {"polluted": true}}'),
      deep: nested(MAX_PAYLOAD_DEPTH - 1),
    } as Record<string, unknown>;
    const r = await outbox.add({ topic: 'shape.ok', payload, headers: { 'x-trace': 'a\0b' } });
    const doc = await t.db.collection<PendingDocument>(`outbox_shape_ok_p${r.partition}`).findOne({ _id: r.id });
    expect(doc?.payload).toEqual(payload);
    expect(doc?.headers).toEqual({ 'x-trace': 'a\0b' });
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });
});

describe('storage error classification', () => {
  it('does not call a server refusal of the document transient, and calls network and selection failures transient', async () => {
    // MongoDB 5.0+ stores $-prefixed and dotted field names (SecantusDB too); FerretDB 1.x
    // refuses them. The hub never relies on either: its own validation refuses such payloads
    // (above). A collection validator refuses a document on MongoDB and SecantusDB.
    const { flavor } = testCapabilities();
    const dollar = await t.db
      .collection('raw')
      .insertOne({ p: { $set: 1 } })
      .catch((e: unknown) => e);
    const validated = async (): Promise<unknown> => {
      await t.db.createCollection('validated', { validator: { $jsonSchema: { required: ['a'] } } });
      return t.db
        .collection('validated')
        .insertOne({ b: 1 })
        .catch((e: unknown) => e);
    };
    // FerretDB 1.x has no validators.
    const refusals = flavor === 'ferretdb' ? [dollar] : [await validated()];
    if (flavor === 'mongodb' || flavor === 'secantusdb') expect(dollar).not.toBeInstanceOf(Error);
    for (const refused of refusals) {
      expect(refused).toBeInstanceOf(MongoServerError);
      expect(isTransientError(refused)).toBe(false);
      expect(isDocumentRejectedError(refused)).toBe(true);
    }

    await t.db.collection('raw').insertOne({ _id: 'dup' as never });
    const duplicate = await t.db
      .collection('raw')
      .insertOne({ _id: 'dup' as never })
      .catch((e: unknown) => e);
    expect(isTransientError(duplicate)).toBe(false);
    expect(isDocumentRejectedError(duplicate)).toBe(false);

    const nowhere = new MongoClient('mongodb://127.0.0.1:1/', { serverSelectionTimeoutMS: 300 });
    const unreachable = await nowhere
      .db('x')
      .collection('y')
      .insertOne({ a: 1 })
      .catch((e: unknown) => e);
    await nowhere.close();
    expect(isTransientError(unreachable)).toBe(true);
    expect(isDocumentRejectedError(unreachable)).toBe(false);
    expect(isTransientError(new Error('not a driver error'))).toBe(false);
    // Driver 7.9 lets Node's own socket error through from Connection.writeCommand when the
    // server resets the connection as a command is written (the outage test met it): transient.
    expect(isTransientError(Object.assign(new Error('write ECONNRESET'), { code: 'ECONNRESET' }))).toBe(true);
    expect(isTransientError(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }))).toBe(true);
    expect(isTransientError(Object.assign(new Error('no such file'), { code: 'ENOENT' }))).toBe(false);
  });

  it('calls a connection cut in the middle of insertMany transient, and an idempotent add cut at any step lands once when retried', async () => {
    const proxy = await startFaultProxy(t.url);
    // Retryable writes off: the cut reaches the caller as the driver raises it, not after a retry.
    const client = new MongoClient(proxy.url, { serverSelectionTimeoutMS: 1_000, retryWrites: false });
    try {
      await client.connect();
      const raw = client.db(t.name).collection('cut');
      await raw.insertOne({ warm: 1 });
      proxy.pause();
      const pending = raw.insertMany([{ a: 1 }, { a: 2 }]).catch((e: unknown) => e);
      await sleep(100);
      proxy.refuse();
      const cut = await pending;
      // Driver 7: a reset during insertMany is a MongoBulkWriteError without the network
      // error's labels (its errorResponse is the network error). It may pass on a retry.
      expect(cut).toBeInstanceOf(MongoBulkWriteError);
      expect(isTransientError(cut)).toBe(true);
      expect(isDocumentRejectedError(cut)).toBe(false);
      proxy.resume();
      proxy.accept();

      // The outbox, cut at different steps of one add (about 40 ms per round trip): every
      // failure is WRITE_FAILED marked retryable, and the retry with the same id lands once.
      await migrateOutbox(t.db, 'outbox_cut');
      const outbox = createOutbox(client.db(t.name), { collection: 'outbox_cut' });
      proxy.setLatency(20);
      const failures: unknown[] = [];
      for (const [i, at] of [10, 50, 90, 130, 170].entries()) {
        const message = { id: `cut-${i}`, topic: 'cut.test', key: 'k', payload: { i } };
        const first = outbox.add(message, { idempotent: true }).catch((e: unknown) => e);
        await sleep(at);
        proxy.refuse();
        const outcome = await first;
        proxy.accept();
        if (outcome instanceof Error) {
          failures.push(outcome);
          expect(outcome).toMatchObject({ name: 'OutboxError', code: 'WRITE_FAILED', retryable: true });
          // Retried as a client would, while the driver reconnects; every refusal meanwhile says retry.
          let receipt: unknown;
          for (let attempt = 0; receipt === undefined && attempt < 50; attempt++) {
            receipt = await outbox.add(message, { idempotent: true }).catch(async (e: unknown) => {
              expect(e).toMatchObject({ code: 'WRITE_FAILED', retryable: true });
              await sleep(100);
              return undefined;
            });
          }
          expect(receipt).toMatchObject({ id: message.id });
        }
      }
      // At least the early cuts fail (a whole add takes four round trips).
      expect(failures.length).toBeGreaterThan(0);
      // Five messages, each once (no drainer runs here), each claim kept.
      expect(await pendingCount(t.db, 16, 'outbox_cut')).toBe(5);
      expect(await t.db.collection('outbox_cut_ids').countDocuments()).toBe(5);
    } finally {
      await client.close();
      await proxy.close();
    }
  }, 60_000);
});
