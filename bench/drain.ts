/**
 * Drain benchmark (`make bench-drain`). Not part of the test suite.
 *
 * On one server, in one run:
 * 1. the database's own limit: raw `insertMany` of event-shaped documents in
 *    batches of 100 (the drainer's append chunk);
 * 2. drain rate with 1, 2 and 4 drainer processes at backlogs of 1k, 10k and
 *    30k messages (BENCH_BACKLOGS), each on a fresh database, and its ratio to (1);
 * 3. commit-to-publish latency under a steady BENCH_RATE msg/s with 1 drainer.
 *
 * Progress is read from the drainers' own `/metrics` (outbox_published_total),
 * never by counting documents (a full scan on FerretDB).
 * Uses BENCH_SERVER (secantusdb, ferretdb, mongo-java-server) or MONGO_URL if set, else SecantusDB like the tests.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { MongoClient, type Db } from 'mongodb';
import { createOutbox, migrateOutbox } from '../internal/outbox/index.js';
import { startBinary, type BinaryProcess } from '../test/harness/process.js';
import { freePort, startBenchServer } from '../test/harness/server.js';
import { percentile, stop, until } from './common.js';

const BACKLOGS = (process.env['BENCH_BACKLOGS'] ?? '1000,10000,30000').split(',').map(Number);
const DRAINERS = (process.env['BENCH_DRAINERS'] ?? '1,2,4').split(',').map(Number);
const RATE = Number(process.env['BENCH_RATE'] ?? 500);
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 5);
const RAW_DOCS = Number(process.env['BENCH_RAW_DOCS'] ?? 20_000);
const PARTITIONS = 16;
const PAD = 'x'.repeat(200);

const message = (i: number) => ({ topic: 'bench.order', key: `k${i % 1000}`, payload: { i, pad: PAD } });

/** The database's own write limit for event-shaped documents, in docs/s. */
async function rawInsertRate(db: Db): Promise<number> {
  const c = db.collection('raw_events');
  await c.createIndex({ partition: 1, seq: 1 }, { unique: true });
  const started = performance.now();
  for (let i = 0; i < RAW_DOCS; i += 100) {
    await c.insertMany(
      Array.from({ length: Math.min(100, RAW_DOCS - i) }, (_, j) => ({
        _id: `raw-${i + j}` as never,
        topic: 'bench.order',
        key: `k${(i + j) % 1000}`,
        partition: (i + j) % PARTITIONS,
        seq: Math.floor((i + j) / PARTITIONS) + 1,
        epoch: 1,
        w: 'bench',
        payload: { i: i + j, pad: PAD },
        headers: {},
        createdAt: new Date(),
        publishedAt: new Date(),
      })),
      { ordered: true },
    );
  }
  return RAW_DOCS / ((performance.now() - started) / 1000);
}

async function fill(db: Db, n: number): Promise<void> {
  const outbox = createOutbox(db, { partitions: PARTITIONS });
  for (let i = 0; i < n; i += 500) await outbox.addMany(Array.from({ length: Math.min(500, n - i) }, (_, j) => message(i + j)));
}

async function published(ports: number[]): Promise<number> {
  let total = 0;
  for (const port of ports) {
    try {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const m = /^outbox_published_total\{[^}]*\} (\d+)/m.exec(text);
      total += Number(m?.[1] ?? 0);
    } catch {
      // Not listening yet.
    }
  }
  return total;
}

async function startDrainers(url: string, dbName: string, n: number): Promise<{ procs: BinaryProcess[]; ports: number[] }> {
  const procs: BinaryProcess[] = [];
  const ports: number[] = [];
  for (let i = 0; i < n; i++) {
    const port = await freePort();
    ports.push(port);
    procs.push(
      startBinary('drainer', {
        MONGO_URL: url,
        MONGO_DB: dbName,
        MEMBER_ID: `bench-${i}`,
        OUTBOX_PARTITIONS: String(PARTITIONS),
        METRICS_HOST: '127.0.0.1',
        METRICS_PORT: String(port),
        LOG_LEVEL: 'warn',
      }),
    );
  }
  return { procs, ports };
}

/** Drain rate in msg/s, from the first published message to the last (start-up excluded). */
async function drainRate(client: MongoClient, url: string, backlog: number, drainers: number): Promise<number> {
  const dbName = `bench_drain_${backlog}_${drainers}_${Date.now()}`;
  const db = client.db(dbName);
  await migrateOutbox(db, { partitions: PARTITIONS });
  await fill(db, backlog);
  const { procs, ports } = await startDrainers(url, dbName, drainers);
  try {
    let first = 0;
    let firstCount = 0;
    await until(
      async () => {
        const n = await published(ports);
        if (n > 0 && first === 0) [first, firstCount] = [performance.now(), n];
        return n >= backlog;
      },
      900_000,
      'the backlog to drain',
    );
    return (backlog - firstCount) / ((performance.now() - first) / 1000);
  } finally {
    await stop(procs);
    await db.dropDatabase();
  }
}

/** Commit-to-publish latency at a steady rate with one drainer. */
async function latency(client: MongoClient, url: string): Promise<{ p50: number; p99: number; rate: number }> {
  const dbName = `bench_latency_${Date.now()}`;
  const db = client.db(dbName);
  await migrateOutbox(db, { partitions: PARTITIONS });
  const { procs, ports } = await startDrainers(url, dbName, 1);
  try {
    await until(
      async () => (await fetch(`http://127.0.0.1:${ports[0]}/readyz`).catch(() => undefined))?.status === 200,
      30_000,
      'readiness',
    );
    const outbox = createOutbox(db, { partitions: PARTITIONS });
    const ids: string[] = [];
    const start = Date.now();
    let sent = 0;
    while (Date.now() - start < SECONDS * 1000) {
      const due = Math.floor(((Date.now() - start) / 1000) * RATE);
      if (due > sent) {
        ids.push(...(await outbox.addMany(Array.from({ length: due - sent }, (_, j) => message(sent + j)))).map((r) => r.id));
        sent = due;
      }
      await sleep(10);
    }
    await until(async () => (await published(ports)) >= ids.length, 120_000, 'the steady load to drain');
    const events = await db
      .collection<{ createdAt: Date; publishedAt: Date }>('events')
      .find({}, { projection: { createdAt: 1, publishedAt: 1 } })
      .toArray();
    const lat = events.map((e) => e.publishedAt.getTime() - e.createdAt.getTime()).sort((a, b) => a - b);
    return { p50: percentile(lat, 50), p99: percentile(lat, 99), rate: ids.length / SECONDS };
  } finally {
    await stop(procs);
    await db.dropDatabase();
  }
}

const server = await startBenchServer();
const client = await new MongoClient(server.url).connect();
try {
  const rawDb = client.db(`bench_raw_${Date.now()}`);
  const raw = await rawInsertRate(rawDb);
  await rawDb.dropDatabase();
  console.log(`server: ${server.backend}; raw insertMany (batches of 100): ${raw.toFixed(0)} docs/s\n`);
  console.log('| backlog | drainers | drain msg/s | ratio to raw insert |');
  console.log('|---:|---:|---:|---:|');
  for (const backlog of BACKLOGS) {
    for (const n of DRAINERS) {
      const rate = await drainRate(client, server.url, backlog, n);
      console.log(`| ${backlog} | ${n} | ${rate.toFixed(0)} | ${(rate / raw).toFixed(2)}x |`);
    }
  }
  const l = await latency(client, server.url);
  console.log(`\ncommit-to-publish at ${l.rate.toFixed(0)} msg/s, 1 drainer: p50 ${l.p50} ms, p99 ${l.p99} ms`);
} finally {
  await client.close();
  await server.stop();
}
