/**
 * Retention benchmark (`make bench-retention`). Not part of the test suite.
 *
 * (a) Trimming one partition of BENCH_TRIM_EVENTS events (default 1,000,000), seeded
 *     straight into the event log: retention rounds back to back (each looks at and
 *     deletes at most 10,000 events, paced by the duty cycle) until all but the last
 *     1,000 are gone.
 * (b) A drainer's throughput (a BENCH_BACKLOG-message backlog, default 50,000) and
 *     commit-to-publish latency (500 msg/s for BENCH_SECONDS) with trimming running on
 *     the same partitions (a log pre-filled with BENCH_PREFILL old events, default
 *     200,000, that a policy trims), and without: BENCH_RUNS alternating runs (default 3),
 *     medians reported. BENCH_DUTY sets the policies' dutyCycle.
 *
 * Runs on the embedded SecantusDB; BENCH_SERVER picks another embedded server, MONGO_URL any.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { MongoClient, type Db } from 'mongodb';
import { MongoEventLog, migrateEventLog } from '../internal/eventlog/index.js';
import { createLogger } from '../internal/log/index.js';
import { createOutbox, migrateOutbox } from '../internal/outbox/index.js';
import { RetentionKeeper, RetentionPolicies } from '../internal/retention/index.js';
import { startBinary, type BinaryProcess } from '../test/harness/process.js';
import { freePort, startBenchServer } from '../test/harness/server.js';
import { median, metric, percentile } from './common.js';

const TRIM_EVENTS = Number(process.env['BENCH_TRIM_EVENTS'] ?? 1_000_000);
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 10);
/** Old events in the log before each run of (b). */
const PREFILL = Number(process.env['BENCH_PREFILL'] ?? 200_000);
const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
/** BENCH_DUTY: the policies' dutyCycle (default: the product's). */
const DUTY = process.env['BENCH_DUTY'] === undefined ? undefined : Number(process.env['BENCH_DUTY']);
const RATE = 500;
const BACKLOG = Number(process.env['BENCH_BACKLOG'] ?? 50_000);
const PARTITIONS = 16;
const PAD = 'x'.repeat(200);

/** Writes `n` event documents of topic `old.x` spread over `partitions`, with the fences a drainer would have left. */
async function seed(db: Db, n: number, partitions: number): Promise<void> {
  await migrateEventLog(db);
  const events = db.collection('events');
  const at = new Date(Date.now() - 86_400_000);
  for (let i = 0; i < n; i += 5_000) {
    await events.insertMany(
      Array.from({ length: Math.min(5_000, n - i) }, (_, j) => {
        const k = i + j;
        const partition = k % partitions;
        return {
          _id: `old-${k}` as never,
          topic: 'old.x',
          key: `k${k % 1000}`,
          partition,
          seq: Math.floor(k / partitions) + 1,
          epoch: 1,
          w: 'seed',
          payload: { k, pad: PAD },
          headers: {},
          createdAt: at,
          publishedAt: at,
        };
      }),
      { ordered: false },
    );
  }
  for (let p = 0; p < partitions; p++) {
    const head = Math.floor((n - 1 - ((n - 1 - p) % partitions)) / partitions) + 1;
    await db
      .collection('event_fences')
      .updateOne({ _id: p as never }, { $set: { epoch: 1, next: { from: head + 1, ids: [] } } }, { upsert: true });
  }
}

async function trimOnePartition(client: MongoClient): Promise<string> {
  const db = client.db(`bench_trim_${Date.now()}`);
  const seeded = performance.now();
  await seed(db, TRIM_EVENTS, 1);
  const seedSeconds = (performance.now() - seeded) / 1000;
  const log = new MongoEventLog(db);
  await log.claim(0, 1);
  const keeper = new RetentionKeeper({
    log,
    policies: RetentionPolicies.parse(
      JSON.stringify({ default: { maxEvents: 1000 }, ...(DUTY === undefined ? {} : { dutyCycle: DUTY }) }),
      'bench',
    ),
    logger: createLogger({ level: 'error' }),
  });
  const started = performance.now();
  let rounds = 0;
  let deleted = 0;
  for (;;) {
    const r = await keeper.round(0, 1, []);
    rounds++;
    deleted += r.deleted;
    if (r.deleted === 0) break;
  }
  const seconds = (performance.now() - started) / 1000;
  await db.dropDatabase();
  return (
    `(a) trimming ${TRIM_EVENTS.toLocaleString('en')} events of one partition (seeded in ${seedSeconds.toFixed(0)} s): ` +
    `${deleted.toLocaleString('en')} deleted in ${rounds} rounds, ${seconds.toFixed(1)} s, ${Math.round(deleted / seconds).toLocaleString('en')} events/s`
  );
}

/** One run of (b). */
interface Drained {
  rate: number;
  p50: number;
  p99: number;
  trimmed: number;
}

/** Each figure's median over `runs`. */
function medians(runs: readonly Drained[]): Drained {
  const mid = (f: (r: Drained) => number): number => median(runs.map(f));
  return { rate: mid((r) => r.rate), p50: mid((r) => r.p50), p99: mid((r) => r.p99), trimmed: mid((r) => r.trimmed) };
}

/** Drain rate of a backlog and steady-state commit-to-publish latency, with or without a trimming policy at work. */
async function drainWhile(client: MongoClient, url: string, trimming: boolean): Promise<Drained> {
  const name = `bench_ret_${trimming ? 'on' : 'off'}_${Date.now()}`;
  const db = client.db(name);
  await migrateOutbox(db, { partitions: PARTITIONS });
  await seed(db, PREFILL, PARTITIONS);
  const outbox = createOutbox(db, { partitions: PARTITIONS });
  for (let i = 0; i < BACKLOG; i += 500)
    await outbox.addMany(
      Array.from({ length: 500 }, (_, j) => ({ topic: 'bench.order', key: `k${(i + j) % 1000}`, payload: { pad: PAD } })),
    );
  const port = await freePort();
  const drainer: BinaryProcess = startBinary('drainer', {
    MONGO_URL: url,
    MONGO_DB: name,
    OUTBOX_PARTITIONS: String(PARTITIONS),
    METRICS_HOST: '127.0.0.1',
    METRICS_PORT: String(port),
    LOG_LEVEL: 'warn',
    // The old events go; the benchmark's own (after them in every partition) stay.
    ...(trimming
      ? {
          RETENTION: JSON.stringify({ topics: [{ match: 'old.**', maxEvents: 1 }], ...(DUTY === undefined ? {} : { dutyCycle: DUTY }) }),
          RETENTION_INTERVAL: '1s',
        }
      : {}),
  });
  try {
    let first = 0;
    for (;;) {
      const n = await metric(port, 'outbox_published_total');
      if (n > 0 && first === 0) first = performance.now();
      if (n >= BACKLOG) break;
      await sleep(20);
    }
    const rate = BACKLOG / ((performance.now() - first) / 1000);
    const ids: string[] = [];
    const start = Date.now();
    let sent = 0;
    while (Date.now() - start < SECONDS * 1000) {
      const due = Math.floor(((Date.now() - start) / 1000) * RATE);
      if (due > sent) {
        ids.push(
          ...(await outbox.addMany(Array.from({ length: due - sent }, () => ({ topic: 'bench.order', key: 'steady', payload: {} })))).map(
            (r) => r.id,
          ),
        );
        sent = due;
      }
      await sleep(10);
    }
    while ((await metric(port, 'outbox_published_total')) < BACKLOG + ids.length) await sleep(50);
    const events = await db
      .collection<{ createdAt: Date; publishedAt: Date }>('events')
      .find({ _id: { $in: ids as never[] } }, { projection: { createdAt: 1, publishedAt: 1 } })
      .toArray();
    const lat = events.map((e) => e.publishedAt.getTime() - e.createdAt.getTime()).sort((a, b) => a - b);
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const trimmed = [...text.matchAll(/^outbox_retention_trimmed_total\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
    return { rate, p50: percentile(lat, 50), p99: percentile(lat, 99), trimmed };
  } finally {
    drainer.kill('SIGTERM');
    await drainer.exited;
    await db.dropDatabase();
  }
}

const server = await startBenchServer();
const client = await new MongoClient(server.url).connect();
try {
  console.log(`server: ${server.backend}`);
  console.log(await trimOnePartition(client));
  // Alternating runs, medians reported: one run's drain rate and p99 vary by 20 % on a 2-core machine.
  const offs: Drained[] = [];
  const ons: Drained[] = [];
  for (let run = 0; run < RUNS; run++) {
    offs.push(await drainWhile(client, server.url, false));
    ons.push(await drainWhile(client, server.url, true));
  }
  const off = medians(offs);
  const on = medians(ons);
  console.log(
    `(b) ${BACKLOG.toLocaleString('en')}-message backlog, then ${RATE} msg/s for ${SECONDS} s, on a log pre-filled with ${PREFILL.toLocaleString('en')} old events; medians of ${RUNS} alternating runs:`,
  );
  console.log('| | drain msg/s | commit-to-publish p50 / p99 (ms) | old events trimmed meanwhile |');
  console.log('|---|---:|---:|---:|');
  for (const [label, r] of [
    ['without retention', off],
    ['with trimming running', on],
  ] as const)
    console.log(`| ${label} | ${Math.round(r.rate).toLocaleString('en')} | ${r.p50} / ${r.p99} | ${r.trimmed.toLocaleString('en')} |`);
  console.log(`drain rate with trimming: ${((on.rate / off.rate) * 100).toFixed(0)} % of without; p99 ${on.p99} vs ${off.p99} ms`);
  console.log(`runs: ${JSON.stringify({ without: offs, with: ons })}`);
} finally {
  await client.close();
  await server.stop();
}
