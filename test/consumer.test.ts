import { setTimeout as sleep } from 'node:timers/promises';
import { ConsumerError, MongoDedupeStore, idempotent } from '../internal/consumer/index.js';
import { detectCapabilities } from '../internal/mongo/index.js';
import { createClient } from '../internal/sdk/index.js';
import { itWith } from './harness/capabilities.js';
import { useTestDb } from './harness/db.js';
import { rootToken, startHub } from './harness/hub.js';
import { eventually } from './harness/process.js';

const t = useTestDb('consumer');
let n = 0;
async function store(options: ConstructorParameters<typeof MongoDedupeStore>[1] = {}): Promise<MongoDedupeStore> {
  const s = new MongoDedupeStore(t.db, { collection: `dedupe_${++n}`, ...options });
  await s.migrate();
  return s;
}

it('runs a handler once per group and event, however often it is delivered', async () => {
  const s = await store();
  let runs = 0;
  const work = () => Promise.resolve(void runs++);
  expect(await s.processOnce('billing', 'e1', work)).toBe('processed');
  expect(await s.processOnce('billing', 'e1', work)).toBe('duplicate');
  expect(await s.processOnce('shipping', 'e1', work)).toBe('processed');
  expect(runs).toBe(2);
});

it('lets a failed handler run again, refuses a concurrent duplicate, and takes over a crashed claim', async () => {
  const s = await store({ claimMs: 300 });
  await expect(s.processOnce('g', 'boom', async () => Promise.reject(new Error('side effect failed')))).rejects.toThrow(
    'side effect failed',
  );
  expect(await s.processOnce('g', 'boom', () => Promise.resolve())).toBe('processed');

  let release!: () => void;
  const slow = s.processOnce('g', 'busy', () => new Promise<void>((r) => (release = r)));
  await sleep(50);
  const dup = await s.processOnce('g', 'busy', () => Promise.resolve()).catch((e: unknown) => e);
  expect(dup).toBeInstanceOf(ConsumerError);
  expect(dup).toMatchObject({ code: 'IN_PROGRESS' });
  release();
  expect(await slow).toBe('processed');

  // A worker that died holding a claim: after the lease another one runs the handler.
  await t.db.collection(`dedupe_${n}`).insertOne({
    _id: 'g/orphan' as never,
    group: 'g',
    eventId: 'orphan',
    status: 'processing',
    leaseUntil: new Date(Date.now() + 200),
    at: new Date(),
  });
  await expect(s.processOnce('g', 'orphan', () => Promise.resolve())).rejects.toMatchObject({ code: 'IN_PROGRESS' });
  await sleep(250);
  expect(await s.processOnce('g', 'orphan', () => Promise.resolve())).toBe('processed');
});

it('purges records older than the retention', async () => {
  const s = await store({ retentionMs: 1000 });
  await s.processOnce('g', 'old', () => Promise.resolve());
  expect(await s.purge(new Date(Date.now() + 5000))).toBe(1);
  expect(await s.processOnce('g', 'old', () => Promise.resolve())).toBe('processed');
});

itWith('transactions')("commits the handler's writes and the record together", async () => {
  const caps = await detectCapabilities(t.client, t.db);
  const s = await store({ client: t.client, transactions: caps.transactions });
  await s.processOnce('tx', 'e1', async ({ session }) => void (await t.db.collection('ledger').insertOne({ e: 'e1' }, { session })));
  await expect(
    s.processOnce('tx', 'e2', async ({ session }) => {
      await t.db.collection('ledger').insertOne({ e: 'e2' }, { session });
      throw new Error('rollback');
    }),
  ).rejects.toThrow('rollback');
  expect(await s.processOnce('tx', 'e1', () => Promise.resolve())).toBe('duplicate');
  expect(await t.db.collection('ledger').countDocuments()).toBe(1);
});

itWith('transactions')('runs the handler once when two workers take the same event at the same time, and answers at once', async () => {
  const caps = await detectCapabilities(t.client, t.db);
  const s = await store({ client: t.client, transactions: caps.transactions });
  let runs = 0;
  const started = Date.now();
  const outcomes = await Promise.all(
    Array.from({ length: 4 }, () =>
      s.processOnce('race', 'e1', async ({ session }) => {
        runs++;
        await t.db.collection('race_ledger').insertOne({ e: 'e1' }, { session });
        await sleep(100);
      }),
    ),
  );
  // Each transaction that lost the race was aborted: its handler may have started, but
  // nothing it wrote committed.
  expect(outcomes.filter((o) => o === 'processed')).toHaveLength(1);
  expect(outcomes.filter((o) => o === 'duplicate')).toHaveLength(3);
  expect(runs).toBeGreaterThanOrEqual(1);
  expect(await t.db.collection('race_ledger').countDocuments()).toBe(1);
  // No retry loop inside withTransaction (the driver's limit is 120 s).
  expect(Date.now() - started).toBeLessThan(20_000);
});

it('dedupes group redeliveries coming through the SDK', async () => {
  const h = await startHub(t.url, `${t.name}_sdk`, { REDELIVERY_BASE: '50ms' });
  const s = await store();
  const client = createClient<{ 'pay.charge': { amount: number } }>({ url: `ws://127.0.0.1:${h.port}/ws`, getToken: () => rootToken() });
  try {
    let charged = 0;
    let deliveries = 0;
    const charge = idempotent(s, 'payments', (payload: { amount: number }) => void (charged += payload.amount));
    // The side effect is recorded, then the ack is lost (the handler fails afterwards): the gateway redelivers.
    await client.subscribe('pay.*', { group: 'payments' }, async (payload, event) => {
      deliveries++;
      await charge(payload, event);
      if (deliveries === 1) throw new Error('ack lost');
    });
    await client.publish('pay.charge', { amount: 5 }, { key: 'c1' });
    await eventually(() => deliveries === 2, 10_000, 'the redelivery');
    await sleep(200);
    expect(charged).toBe(5);
  } finally {
    await client.close();
    await h.stop();
  }
});
