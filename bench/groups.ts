/**
 * Consumer-group dispatch micro-benchmark (`make bench-groups`). Not part of the tests.
 *
 * Drives the consumer-group engine's GroupManager in memory (in-memory group store, log and
 * leases; no database, no sockets) and reports the cost per event of
 * dispatch + ack for growing numbers of members and partitions. Total
 * in-flight capacity is held at about CAPACITY, split across the members, and
 * each partition reads batches of about the same size whatever the partition
 * count (events are published ~20 per partition at a time), so only the
 * bookkeeping changes between cells: the cost per event should stay flat as
 * members and partitions grow.
 *
 * Members settle their deliveries from a setImmediate loop, as replies from
 * sockets arrive in later turns of the event loop.
 *
 * Each cell is the best of RUNS runs of the process's CPU time (user + system)
 * per event: CPU time, not wall time, so other processes on a shared machine
 * disturb it less; best of several to drop the runs a GC or a neighbour spoiled.
 *
 * BENCH_GROUPS_MODULE may point at another build of the groups module (same
 * GroupManager API) to compare implementations.
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import type { LogEvent } from '../internal/eventlog/index.js';
import { createGatewayMetrics } from '../internal/gateway/index.js';
import type { GroupManager, GroupMember } from '../internal/groups/index.js';
import { MemoryGroupStore } from '../internal/groupstore/index.js';
import { MemoryLeaseStore } from '../internal/lease/index.js';
import { createLogger } from '../internal/log/index.js';
import { createRegistry } from '../internal/telemetry/index.js';
import { TopicPattern } from '../internal/topic/index.js';
import { MemoryLog } from '../test/harness/memory-ports.js';

const MIN_EVENTS = Number(process.env['BENCH_GROUP_EVENTS'] ?? 50_000);
const CAPACITY = Number(process.env['BENCH_GROUP_CAPACITY'] ?? 1_000);
const KEYS = 5_000;
const list = (name: string, fallback: number[]): number[] => process.env[name]?.split(',').map(Number) ?? fallback;
const MEMBERS = list('BENCH_GROUP_MEMBERS', [1, 10, 100, 1_000]);
const PARTITIONS = list('BENCH_GROUP_PARTITIONS', [1, 16, 256, 1_024]);
const DEADLINE_MS = 60_000;
const RUNS = Number(process.env['BENCH_GROUP_RUNS'] ?? 3);

type ManagerClass = typeof GroupManager;
const modulePath = process.env['BENCH_GROUPS_MODULE'];
const { GroupManager: Manager } = (
  modulePath ? await import(pathToFileURL(modulePath).href) : await import('../internal/groups/index.js')
) as { GroupManager: ManagerClass };

/** Events per run: enough for 100 per partition. */
const eventsFor = (partitions: number): number => Math.max(MIN_EVENTS, 100 * partitions);
/** Events per publish: about 20 per partition, so each partition reads batches of the same size whatever P is. */
const batchFor = (partitions: number): number => Math.max(1_000, 20 * partitions);

async function run(members: number, partitions: number): Promise<{ cpuNsPerEvent: number; wallMs: number }> {
  const EVENTS = eventsFor(partitions);
  const BATCH = batchFor(partitions);
  const log = new MemoryLog();
  const manager = new Manager({
    eventLog: log,
    tail: log,
    leases: new MemoryLeaseStore(),
    store: new MemoryGroupStore(),
    log: createLogger({ level: 'error' }),
    metrics: createGatewayMetrics(createRegistry('bench')),
    settings: {
      partitions,
      instance: 'bench',
      ackTimeoutMs: 600_000,
      maxDeliveries: 5,
      redeliveryBaseMs: 100,
      leaseTtlMs: 600_000,
      leaseRenewMs: 300_000,
      cursorFlushMs: 60_000,
    },
  });
  const toAck: Array<[settle: (id: string) => boolean, id: string]> = [];
  let acked = 0;
  const perMember = Math.max(1, Math.round(CAPACITY / members));
  const filter = TopicPattern.compile('bench.*');
  for (let i = 0; i < members; i++) {
    let settle: (id: string) => boolean = () => false;
    const member: GroupMember & { inFlight: number } = {
      id: `m${i}`,
      maxInFlight: perMember,
      inFlight: 0, // used by implementations that keep the count on the member
      send: (e: LogEvent) => (toAck.push([settle, e.id]), true),
    };
    const joined: unknown = await manager.join('bench', filter, member);
    // Implementations with activation hold deliveries until the member is activated.
    if (typeof joined === 'object' && joined !== null && 'activate' in joined) (joined as { activate(): void }).activate();
    // Implementations before delivery binding settle through the manager instead of a membership.
    const legacy = manager as unknown as { ack(group: string, id: string): boolean };
    settle =
      typeof joined === 'object' && joined !== null && 'ack' in joined
        ? (id) => (joined as { ack(id: string): boolean }).ack(id)
        : (id) => legacy.ack('bench', id);
  }
  const done = new Promise<void>((resolve, reject) => {
    const deadline = Date.now() + DEADLINE_MS;
    const settle = (): void => {
      const batch = toAck.splice(0);
      for (const [ack, id] of batch) if (ack(id)) acked++;
      if (acked >= EVENTS) return resolve();
      if (Date.now() > deadline) return reject(new Error(`only ${acked}/${EVENTS} acked`));
      setImmediate(settle);
    };
    setImmediate(settle);
  });
  const started = performance.now();
  const cpu = process.cpuUsage();
  for (let i = 0; i < EVENTS; i += BATCH) {
    log.publish(
      Array.from({ length: Math.min(BATCH, EVENTS - i) }, (_, j) => {
        const n = i + j;
        return { partition: n % partitions, key: `k${n % KEYS}`, topic: 'bench.run', payload: n };
      }),
    );
  }
  await done;
  const used = process.cpuUsage(cpu);
  const wallMs = performance.now() - started;
  await manager.stop();
  return { cpuNsPerEvent: ((used.user + used.system) * 1e3) / EVENTS, wallMs };
}

console.log(
  `group dispatch + ack, CPU time per event (best of ${RUNS}); max(${MIN_EVENTS}, 100 x P) events over ${KEYS} keys, published ` +
    `max(1000, 20 x P) at a time; ~${CAPACITY} deliveries in flight${modulePath ? ` (${modulePath})` : ''}`,
);
console.log('| members \\ partitions | ' + PARTITIONS.join(' | ') + ' |');
console.log('|---:|' + PARTITIONS.map(() => '---:').join('|') + '|');
await run(10, PARTITIONS[0] ?? 1); // warm-up: JIT and allocation
for (const m of MEMBERS) {
  const cells: string[] = [];
  for (const p of PARTITIONS) {
    let best = Number.POSITIVE_INFINITY;
    for (let i = 0; i < RUNS; i++) best = Math.min(best, (await run(m, p)).cpuNsPerEvent);
    cells.push(`${(best / 1000).toFixed(1)} µs`);
  }
  console.log(`| ${m} | ${cells.join(' | ')} |`);
}
