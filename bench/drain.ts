/**
 * Drain benchmark (`make bench`). Not part of the test suite.
 *
 * For 1, 2 and 4 drainer processes: (1) throughput draining a pre-filled
 * backlog of BENCH_MESSAGES messages; (2) commit-to-publish latency p50/p99
 * under a steady BENCH_RATE msg/s for BENCH_SECONDS. Then the naive baseline:
 * one worker claiming one message at a time with findOneAndUpdate, same load.
 * Uses MONGO_URL if set, else a local FerretDB like the tests.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { MongoClient, type Db } from 'mongodb';
import { createOutbox, migrateOutbox, type OutboxDocument } from '../internal/outbox/index.js';
import { startBinary, type BinaryProcess } from '../test/harness/process.js';
import { startTestServer } from '../test/harness/server.js';

const MESSAGES = Number(process.env['BENCH_MESSAGES'] ?? 5000);
const RATE = Number(process.env['BENCH_RATE'] ?? 200);
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 5);
const PARTITIONS = 16;
const BASELINE_BUDGET_MS = Number(process.env['BENCH_BASELINE_SECONDS'] ?? 30) * 1000;

interface Result {
  name: string;
  throughput: number;
  p50: number;
  p99: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

async function fill(db: Db, n: number): Promise<void> {
  const outbox = createOutbox(db, { partitions: PARTITIONS });
  for (let i = 0; i < n; i += 500) {
    await outbox.addMany(
      Array.from({ length: Math.min(500, n - i) }, (_, j) => ({
        topic: 'bench.order',
        key: `k${(i + j) % 1000}`,
        payload: { i: i + j, pad: 'x'.repeat(200) },
      })),
    );
  }
}

/** Writes at `rate` msg/s for `seconds`, in 20 ms ticks; returns the ids written. */
async function steady(db: Db, rate: number, seconds: number): Promise<string[]> {
  const outbox = createOutbox(db, { partitions: PARTITIONS });
  const ids: string[] = [];
  const start = Date.now();
  let sent = 0;
  while (Date.now() - start < seconds * 1000) {
    const due = Math.floor(((Date.now() - start) / 1000) * rate);
    if (due > sent) {
      const batch = Array.from({ length: due - sent }, (_, j) => ({ topic: 'bench.live', key: `k${(sent + j) % 1000}`, payload: { j } }));
      ids.push(...(await outbox.addMany(batch)).map((r) => r.id));
      sent = due;
    }
    await sleep(20);
  }
  return ids;
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('benchmark timed out');
    await sleep(25);
  }
}

async function latencies(db: Db, ids: string[]): Promise<number[]> {
  const events = await db
    .collection<{ createdAt: Date; publishedAt: Date }>('events')
    .find({ _id: { $in: ids as never[] } })
    .toArray();
  return events.map((e) => e.publishedAt.getTime() - e.createdAt.getTime()).sort((a, b) => a - b);
}

async function runDrainers(client: MongoClient, url: string, n: number): Promise<Result> {
  const dbName = `bench_drainers_${n}_${Date.now()}`;
  const db = client.db(dbName);
  await migrateOutbox(db);
  await fill(db, MESSAGES);
  const outbox = db.collection('outbox');
  const procs: BinaryProcess[] = [];
  const started = Date.now();
  for (let i = 0; i < n; i++) {
    procs.push(
      startBinary('drainer', {
        MONGO_URL: url,
        MONGO_DB: dbName,
        MEMBER_ID: `bench-${i}`,
        OUTBOX_PARTITIONS: String(PARTITIONS),
        METRICS_HOST: '127.0.0.1',
        METRICS_PORT: '0',
        LOG_LEVEL: 'warn',
        LEASE_RENEW_INTERVAL: '500ms',
      }),
    );
  }
  try {
    await waitUntil(async () => (await outbox.countDocuments({ status: 'pending' })) === 0, 600_000);
    const throughput = MESSAGES / ((Date.now() - started) / 1000);
    const ids = await steady(db, RATE, SECONDS);
    await waitUntil(async () => (await outbox.countDocuments({ status: 'pending' })) === 0, 120_000);
    const lat = await latencies(db, ids);
    return { name: `${n} drainer${n > 1 ? 's' : ''}`, throughput, p50: percentile(lat, 50), p99: percentile(lat, 99) };
  } finally {
    for (const p of procs) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => p.exited));
    await db.dropDatabase();
  }
}

/** The naive design: claim one message at a time, append it, mark it. */
async function naiveWorker(db: Db, stop: AbortSignal): Promise<void> {
  const outbox = db.collection<OutboxDocument & { claimedAt?: Date }>('outbox');
  const events = db.collection('events');
  while (!stop.aborted) {
    const m = await outbox.findOneAndUpdate(
      { status: 'pending' },
      { $set: { status: 'claimed' as never, claimedAt: new Date() } },
      { sort: { ts: 1 } },
    );
    if (!m) {
      await sleep(10);
      continue;
    }
    await events.insertOne({
      _id: m._id as never,
      topic: m.topic,
      key: m.key,
      partition: m.partition,
      payload: m.payload,
      createdAt: m.createdAt,
      publishedAt: new Date(),
    });
    await outbox.updateOne({ _id: m._id }, { $set: { status: 'sent', sentAt: new Date() } });
  }
}

async function runBaseline(client: MongoClient): Promise<Result> {
  const db = client.db(`bench_baseline_${Date.now()}`);
  await migrateOutbox(db);
  await fill(db, MESSAGES);
  const outbox = db.collection('outbox');
  const stop = new AbortController();
  const worker = naiveWorker(db, stop.signal);
  const started = Date.now();
  try {
    await waitUntil(
      async () => (await outbox.countDocuments({ status: 'pending' })) === 0 || Date.now() - started > BASELINE_BUDGET_MS,
      600_000,
    );
    const done = await outbox.countDocuments({ status: 'sent' });
    const throughput = done / ((Date.now() - started) / 1000);
    // Latency on an empty backlog, as for the drainers.
    await outbox.deleteMany({ status: 'pending' });
    const ids = await steady(db, Math.min(RATE, Math.max(1, Math.floor(throughput * 0.8))), SECONDS);
    await waitUntil(async () => (await outbox.countDocuments({ status: 'pending' })) === 0, 120_000);
    const lat = await latencies(db, ids);
    return { name: 'baseline (findOneAndUpdate, 1 at a time)', throughput, p50: percentile(lat, 50), p99: percentile(lat, 99) };
  } finally {
    stop.abort();
    await worker;
    await db.dropDatabase();
  }
}

const server = await startTestServer();
const client = new MongoClient(server.url);
await client.connect();
try {
  process.stdout.write(
    `backend: ${server.backend} at ${server.url}; ${MESSAGES} messages backlog, ${PARTITIONS} partitions; latency at ${RATE} msg/s for ${SECONDS}s\n`,
  );
  const results: Result[] = [];
  for (const n of [1, 2, 4]) {
    results.push(await runDrainers(client, server.url, n));
    process.stdout.write(`  done: ${results.at(-1)?.name}\n`);
  }
  const baseline = await runBaseline(client);
  results.push(baseline);
  process.stdout.write('\n| setup | drain throughput (msg/s) | commit-to-publish p50 (ms) | p99 (ms) |\n|---|---:|---:|---:|\n');
  for (const r of results) process.stdout.write(`| ${r.name} | ${r.throughput.toFixed(0)} | ${r.p50.toFixed(0)} | ${r.p99.toFixed(0)} |\n`);
  const one = results[0] as Result;
  process.stdout.write(`\n1 drainer vs baseline: ${(one.throughput / baseline.throughput).toFixed(1)}x throughput\n`);
} finally {
  await client.close();
  await server.stop();
}
