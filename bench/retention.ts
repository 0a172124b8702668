/**
 * Retention benchmark (`make bench-retention`). Not part of the test suite.
 *
 * (a) Trimming one partition of BENCH_TRIM_EVENTS events (default 1,000,000), seeded
 *     straight into the event log: retention rounds back to back (each looks at and
 *     deletes at most 10,000 events, paced by the duty cycle) until all but the last
 *     1,000 are gone.
 * (b) A drainer's throughput (a BENCH_BACKLOG-message backlog, default 50,000) and
 *     commit-to-publish latency (500 msg/s for BENCH_SECONDS) with trimming running on
 *     the same partitions, and without, twice: a policy that keeps every partition at
 *     1,000 events (once it has trimmed the backlog, it trims what is written: a deployed
 *     hub's steady state; the latency window starts then), and one
 *     that trims a log pre-filled with BENCH_PREFILL old events, default 200,000 (the
 *     catch-up after retention is switched on). BENCH_RUNS alternating runs each
 *     (default 3), medians reported. BENCH_DUTY sets the policies' dutyCycle,
 *     BENCH_COMPARE=steady or catchup runs one comparison only.
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
  if (n === 0) return;
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
  /** Events trimmed per second during the latency window. */
  trimRate: number;
}

/** Each figure's median over `runs`. */
function medians(runs: readonly Drained[]): Drained {
  const mid = (f: (r: Drained) => number): number => median(runs.map(f));
  return { rate: mid((r) => r.rate), p50: mid((r) => r.p50), p99: mid((r) => r.p99), trimRate: mid((r) => r.trimRate) };
}

/** What one configuration of (b) runs with. */
interface Setup {
  readonly label: string;
  /** Old events in the log before the run. */
  readonly prefill: number;
  readonly retention?: object;
  /** Wait, before the latency window, until the backlog's trimming is done (trimmed count still for 2 s). */
  readonly settle?: boolean;
}

async function trimmedSoFar(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return [...text.matchAll(/^outbox_retention_trimmed_total\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
}

/** Drain rate of a backlog and steady-state commit-to-publish latency, with `setup`'s retention at work (or none). */
async function drainWhile(client: MongoClient, url: string, setup: Setup): Promise<Drained> {
  const name = `bench_ret_${Date.now()}`;
  const db = client.db(name);
  await migrateOutbox(db, { partitions: PARTITIONS });
  await seed(db, setup.prefill, PARTITIONS);
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
    ...(setup.retention
      ? { RETENTION: JSON.stringify({ ...setup.retention, ...(DUTY === undefined ? {} : { dutyCycle: DUTY }) }), RETENTION_INTERVAL: '1s' }
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
    if (setup.settle)
      // At least 5 s (the database settles after the backlog too, with or without retention).
      for (let last = -1, still = 0, waited = 0; (still < 4 || waited < 10) && waited < 240; waited++) {
        await sleep(500);
        const now = await trimmedSoFar(port);
        still = now === last ? still + 1 : 0;
        last = now;
      }
    const ids: string[] = [];
    const trimmedBefore = await trimmedSoFar(port);
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
    const trimRate = ((await trimmedSoFar(port)) - trimmedBefore) / ((Date.now() - start) / 1000);
    while ((await metric(port, 'outbox_published_total')) < BACKLOG + ids.length) await sleep(50);
    const events = await db
      .collection<{ createdAt: Date; publishedAt: Date }>('events')
      .find({ _id: { $in: ids as never[] } }, { projection: { createdAt: 1, publishedAt: 1 } })
      .toArray();
    const lat = events.map((e) => e.publishedAt.getTime() - e.createdAt.getTime()).sort((a, b) => a - b);
    return { rate, p50: percentile(lat, 50), p99: percentile(lat, 99), trimRate };
  } finally {
    // BENCH_LOGS=1: the drainer's warnings (a failing retention round shows there).
    if (process.env['BENCH_LOGS'] === '1') for (const l of drainer.logs) console.log(JSON.stringify(l));
    drainer.kill('SIGTERM');
    await drainer.exited;
    await db.dropDatabase();
  }
}

/**
 * (b)'s two comparisons: trimming that keeps a log at its bound (the steady state of a deployed
 * hub: it trims what is written), and trimming a long expired prefix (retention switched on for
 * a log that grew: the catch-up), each against the same log without retention.
 */
const ALL_COMPARISONS: ReadonlyArray<readonly [Setup, Setup]> = [
  [
    { label: 'without retention', prefill: 0, settle: true },
    {
      label: 'retention keeping every partition at 1,000 events',
      prefill: 0,
      retention: { default: { maxEvents: 1000 } },
      settle: true,
    },
  ],
  [
    { label: `without retention, ${PREFILL.toLocaleString('en')} old events in the log`, prefill: PREFILL },
    {
      label: `retention trimming those ${PREFILL.toLocaleString('en')} old events meanwhile`,
      prefill: PREFILL,
      retention: { topics: [{ match: 'old.**', maxEvents: 1 }] },
    },
  ],
];

/** BENCH_COMPARE=steady or catchup runs only that comparison of (b). */
const COMPARISONS = ALL_COMPARISONS.filter(
  (_, i) => process.env['BENCH_COMPARE'] === undefined || process.env['BENCH_COMPARE'] === ['steady', 'catchup'][i],
);

const server = await startBenchServer();
const client = await new MongoClient(server.url).connect();
try {
  console.log(`server: ${server.backend}`);
  console.log(await trimOnePartition(client));
  // Alternating runs, medians reported: one run's drain rate and p99 vary by 20 % on a 2-core machine.
  console.log(
    `(b) ${BACKLOG.toLocaleString('en')}-message backlog, then ${RATE} msg/s for ${SECONDS} s; medians of ${RUNS} alternating runs:`,
  );
  console.log('| | drain msg/s | commit-to-publish p50 / p99 (ms) | trimmed during the 500 msg/s window (events/s) |');
  console.log('|---|---:|---:|---:|');
  const all: Record<string, Drained[]> = {};
  for (const [without, withIt] of COMPARISONS) {
    const offs: Drained[] = [];
    const ons: Drained[] = [];
    for (let run = 0; run < RUNS; run++) {
      offs.push(await drainWhile(client, server.url, without));
      ons.push(await drainWhile(client, server.url, withIt));
    }
    const [off, on] = [medians(offs), medians(ons)];
    for (const [setup, r] of [
      [without, off],
      [withIt, on],
    ] as const)
      console.log(
        `| ${setup.label} | ${Math.round(r.rate).toLocaleString('en')} | ${r.p50} / ${r.p99} | ${Math.round(r.trimRate).toLocaleString('en')} |`,
      );
    console.log(
      `|  | drain ${((on.rate / off.rate) * 100).toFixed(0)} % of without | p99 ${((on.p99 / off.p99) * 100).toFixed(0)} % of without | |`,
    );
    all[without.label] = offs;
    all[withIt.label] = ons;
  }
  console.log(`runs: ${JSON.stringify(all)}`);
} finally {
  await client.close();
  await server.stop();
}
