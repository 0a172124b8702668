/**
 * Ops API benchmark (`make bench-ops`). Not part of the test suite.
 *
 * Seeds one database with BENCH_EVENTS (100,000) events over 16 partitions, 20
 * consumer groups (filters of every kind; cursors at the head, a little, far
 * and very far behind; some dead letters), a pending backlog, dead messages and
 * drainer leases; starts the ops binary on it and times BENCH_REQUESTS requests
 * to every read endpoint, one after the other, plus ops' own sample (from its
 * `ops_sample_seconds` metric). Uses BENCH_SERVER or MONGO_URL if set, else a local SecantusDB
 * like the tests.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { MongoClient } from 'mongodb';
import { MongoEventLog, migrateEventLog } from '../internal/eventlog/index.js';
import { MongoGroupStore, migrateGroups } from '../internal/groupstore/index.js';
import { MongoLeaseStore, migrateLeases } from '../internal/lease/index.js';
import { createOutbox, migrateOutbox } from '../internal/outbox/index.js';
import { startBinary } from '../test/harness/process.js';
import { freePort, startBenchServer } from '../test/harness/server.js';
import { percentile } from './common.js';

const EVENTS = Number(process.env['BENCH_EVENTS'] ?? 100_000);
const GROUPS = Number(process.env['BENCH_GROUPS'] ?? 20);
const REQUESTS = Number(process.env['BENCH_REQUESTS'] ?? 20);
const PARTITIONS = 16;
const TOPICS = ['orders.created', 'orders.paid', 'orders.eu.shipped', 'invoices.sent', 'audit.user.login'];
const FILTERS = ['orders.*', '**', 'invoices.sent', 'audit.**', 'orders.**', '*.paid', 'orders.eu.*'];
/** How far behind the head each group's cursors are, per partition (cycled through). */
const BEHIND = [0, 0, 50, 500, 3_000, 6_000];

async function seed(url: string, dbName: string): Promise<{ heads: number[]; outboxId: string }> {
  const client = await new MongoClient(url).connect();
  try {
    const db = client.db(dbName);
    await db.dropDatabase();
    await Promise.all([migrateEventLog(db), migrateGroups(db), migrateLeases(db), migrateOutbox(db, { partitions: PARTITIONS })]);
    const log = new MongoEventLog(db);
    const perPartition = Math.ceil(EVENTS / PARTITIONS);
    const started = performance.now();
    for (let p = 0; p < PARTITIONS; p++) {
      await log.claim(p, 1);
      for (let from = 0; from < perPartition; from += 1000) {
        await log.append(
          p,
          1,
          Array.from({ length: Math.min(1000, perPartition - from) }, (_, i) => {
            const n = from + i;
            return {
              id: `ev-${p}-${n}`,
              topic: TOPICS[n % TOPICS.length] as string,
              key: `k${n % 500}`,
              payload: { n, note: 'x'.repeat(120) },
              headers: {},
              createdAt: new Date(),
            };
          }),
        );
      }
    }
    process.stderr.write(`seeded ${perPartition * PARTITIONS} events in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
    const heads = Array.from({ length: PARTITIONS }, () => perPartition);
    const groups = new MongoGroupStore(db);
    for (let g = 0; g < GROUPS; g++) {
      const name = `group-${String(g).padStart(2, '0')}`;
      await groups.register(name, FILTERS[g % FILTERS.length] as string);
      for (let p = 0; p < PARTITIONS; p++) {
        const behind = BEHIND[(g + p) % BEHIND.length] as number;
        await groups.saveCursor(name, p, Math.max(0, perPartition - behind), 1);
      }
      if (g % 4 === 0) {
        const [event] = await log.read({ partition: g % PARTITIONS, afterSeq: 10, limit: 1 });
        if (event) await groups.deadLetter(name, event, 5, 'ack timeout');
      }
    }
    const outbox = createOutbox(db, { partitions: PARTITIONS });
    const pending = await outbox.addMany(
      Array.from({ length: 2000 }, (_, i) => ({ topic: 'orders.created', key: `p${i % 50}`, payload: { i } })),
    );
    const leases = new MongoLeaseStore(db);
    for (let p = 0; p < PARTITIONS; p++) await leases.acquire('drainer', p, `drainer-${p % 3}`, 600_000);
    for (let d = 0; d < 3; d++) await leases.heartbeat('drainer', `drainer-${d}`, 600_000);
    await leases.heartbeat('gateway', 'gateway-0', 600_000);
    return { heads, outboxId: pending[7]?.id ?? '' };
  } finally {
    await client.close();
  }
}

async function main(): Promise<void> {
  const server = process.env['MONGO_URL'] ? undefined : await startBenchServer();
  const url = process.env['MONGO_URL'] ?? (server as { url: string }).url;
  const dbName = 'bench_ops';
  try {
    const { heads, outboxId } = await seed(url, dbName);
    const port = await freePort();
    const ops = startBinary('ops', {
      MONGO_URL: url,
      MONGO_DB: dbName,
      OUTBOX_PARTITIONS: String(PARTITIONS),
      OPS_HOST: '127.0.0.1',
      OPS_PORT: String(port),
      LOG_LEVEL: 'warn',
    });
    const base = `http://127.0.0.1:${port}`;
    try {
      for (;;) {
        const ok = await fetch(`${base}/readyz`).then(
          (r) => r.ok,
          () => false,
        );
        if (ok) break;
        await sleep(200);
      }
      const mid = Math.floor((heads[3] ?? 0) / 2);
      const paths = [
        '/api/overview',
        '/api/backlog',
        '/api/leases',
        '/api/partitions',
        '/api/groups',
        '/api/dead-letters',
        '/api/stalls',
        `/api/outbox/${outboxId}`,
        '/api/events/latest?topic=orders.created&key=k5',
        `/api/events?partition=3&after=${mid}&limit=100`,
        `/api/events?partition=3&after=${mid}&limit=1000`,
        `/api/events/export?partition=5&after=${mid}&until=${mid + 1000}`,
      ];
      const rows: string[] = [];
      for (const path of paths) {
        const times: number[] = [];
        for (let i = 0; i < REQUESTS; i++) {
          const t0 = performance.now();
          const res = await fetch(base + path);
          await res.arrayBuffer();
          if (!res.ok) throw new Error(`${path}: ${res.status}`);
          times.push(performance.now() - t0);
          // A request that takes seconds (a scan on a server without index pushdown) is measured 5 times, not 20.
          if (times.length >= 5 && Math.min(...times) > 1_000) break;
        }
        times.sort((a, b) => a - b);
        const row = `| \`${path.replace(outboxId, ':id')}\` | ${times.length} | ${percentile(times, 50).toFixed(1)} | ${percentile(times, 95).toFixed(1)} | ${(times.at(-1) ?? 0).toFixed(1)} |`;
        rows.push(row);
        process.stderr.write(`${row}\n`);
      }
      const metrics = await (await fetch(`${base}/metrics`)).text();
      const sum = Number(/^ops_sample_seconds_sum\{[^}]*\} ([\d.e+-]+)/m.exec(metrics)?.[1] ?? NaN);
      const count = Number(/^ops_sample_seconds_count\{[^}]*\} (\d+)/m.exec(metrics)?.[1] ?? NaN);
      process.stdout.write(
        `\nops API, ${heads.reduce((n, h) => n + h, 0)} events over ${PARTITIONS} partitions, ${GROUPS} groups, ${REQUESTS} sequential requests each (ms)\n\n` +
          `| request | requests | p50 | p95 | max |\n|---|---:|---:|---:|---:|\n${rows.join('\n')}\n\n` +
          `ops sample (heads, lag of every group by its filter, lapsed replicas): ${((sum / count) * 1000).toFixed(0)} ms on average over ${count} samples\n`,
      );
    } finally {
      ops.kill('SIGTERM');
      await ops.exited;
    }
  } finally {
    await server?.stop();
  }
}

await main();
