/**
 * Consumer-group dispatch micro-benchmark (`make bench-groups`). Not part of the tests.
 *
 * Drives the gateway's GroupManager in memory (in-memory group store, log and
 * leases; no database, no sockets) and reports the cost per event of
 * dispatch + ack for growing numbers of members and partitions. Total
 * in-flight capacity is held at about CAPACITY, split across the members, so
 * only the bookkeeping changes between rows: the cost per event should stay
 * flat as members and partitions grow.
 *
 * Members settle their deliveries from a setImmediate loop, as replies from
 * sockets arrive in later turns of the event loop.
 *
 * BENCH_GROUPS_MODULE may point at another build of the groups module (same
 * GroupManager API) to compare implementations.
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import type { LogEvent } from '../internal/eventlog/index.js';
import { createGatewayMetrics, type GroupManager, type GroupMember } from '../internal/gateway/index.js';
import { MemoryGroupStore } from '../internal/groupstore/index.js';
import { createLogger } from '../internal/log/index.js';
import { createRegistry } from '../internal/telemetry/index.js';
import { TopicPattern } from '../internal/topic/index.js';
import { MemoryLeaseStore, MemoryLog } from '../test/harness/memory-ports.js';

const EVENTS = Number(process.env['BENCH_GROUP_EVENTS'] ?? 50_000);
const CAPACITY = Number(process.env['BENCH_GROUP_CAPACITY'] ?? 1_000);
const KEYS = 5_000;
const list = (name: string, fallback: number[]): number[] => process.env[name]?.split(',').map(Number) ?? fallback;
const MEMBERS = list('BENCH_GROUP_MEMBERS', [1, 10, 100, 1_000]);
const PARTITIONS = list('BENCH_GROUP_PARTITIONS', [1, 16, 256, 1_024]);
const DEADLINE_MS = 60_000;

type ManagerClass = typeof GroupManager;
const modulePath = process.env['BENCH_GROUPS_MODULE'];
const { GroupManager: Manager } = (
  modulePath ? await import(pathToFileURL(modulePath).href) : await import('../internal/gateway/index.js')
) as { GroupManager: ManagerClass };

async function run(members: number, partitions: number): Promise<{ nsPerEvent: number; ms: number }> {
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
  for (let i = 0; i < EVENTS; i += 1_000) {
    log.publish(
      Array.from({ length: Math.min(1_000, EVENTS - i) }, (_, j) => {
        const n = i + j;
        return { partition: n % partitions, key: `k${n % KEYS}`, topic: 'bench.run', payload: n };
      }),
    );
  }
  await done;
  const ms = performance.now() - started;
  await manager.stop();
  return { nsPerEvent: (ms * 1e6) / EVENTS, ms };
}

console.log(
  `group dispatch + ack, ${EVENTS} events, ${KEYS} keys, ~${CAPACITY} deliveries in flight${modulePath ? ` (${modulePath})` : ''}`,
);
console.log('| members \\ partitions | ' + PARTITIONS.join(' | ') + ' |');
console.log('|---:|' + PARTITIONS.map(() => '---:').join('|') + '|');
await run(10, PARTITIONS[0] ?? 1); // warm-up: JIT and allocation
for (const m of MEMBERS) {
  const cells: string[] = [];
  for (const p of PARTITIONS) {
    const r = await run(m, p);
    cells.push(`${(r.nsPerEvent / 1000).toFixed(1)} µs`);
  }
  console.log(`| ${m} | ${cells.join(' | ')} |`);
}
