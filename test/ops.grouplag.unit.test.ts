/** Group lag by filter on the in-memory ports: exact within the window, extrapolated beyond it, and who consumes. */
import { MemoryEventLog } from '../internal/eventlog/index.js';
import { MemoryGroupStore, groupLeaseGroup } from '../internal/groupstore/index.js';
import { MemoryLeaseStore } from '../internal/lease/index.js';
import { GroupLag, LAG_WINDOW } from '../internal/ops/index.js';

async function setup(perPartition: number): Promise<{ lag: GroupLag; groups: MemoryGroupStore; leases: MemoryLeaseStore }> {
  const log = new MemoryEventLog();
  for (let p = 0; p < 2; p++) {
    for (let from = 0; from < perPartition; from += 1000) {
      await log.append(
        p,
        1,
        Array.from({ length: Math.min(1000, perPartition - from) }, (_, i) => ({
          id: `e-${p}-${from + i}`,
          // One event in four is an invoice.
          topic: (from + i) % 4 === 0 ? 'invoices.sent' : 'orders.created',
          key: null,
          payload: {},
          headers: {},
          createdAt: new Date(),
        })),
      );
    }
  }
  const groups = new MemoryGroupStore();
  const leases = new MemoryLeaseStore();
  return { lag: new GroupLag({ groups, log, leases }), groups, leases };
}

it('counts only matching events after each cursor, with their age, and the gateways serving the group', async () => {
  const { lag, groups, leases } = await setup(100);
  await groups.register('invoicing', 'invoices.*');
  await groups.register('all', '**');
  await groups.register('done', 'orders.*');
  expect(await groups.saveCursor('invoicing', 0, 40, 1)).toBe(true);
  for (const p of [0, 1]) expect(await groups.saveCursor('done', p, 100, 1)).toBe(true);
  await leases.heartbeat(groupLeaseGroup('all'), 'gw-1', 60_000);
  await leases.heartbeat(groupLeaseGroup('all'), 'gw-2', 60_000);
  const views = await lag.sample([100, 100], 10, Date.now() + 5_000);
  const by = new Map(views.map((v) => [v.group, v]));
  // Partition 0 after seq 40: events 41..100 are indexes 40..99, 15 of them invoices; partition 1: all 25.
  expect(by.get('invoicing')).toMatchObject({ lagEvents: 15 + 25, lagExact: true, gateways: 0 });
  expect(by.get('invoicing')?.partitions.map((p) => p.lagEvents)).toEqual([15, 25]);
  expect(by.get('invoicing')?.maxLagSeconds).toBeGreaterThanOrEqual(5);
  expect(by.get('all')).toMatchObject({ lagEvents: 200, lagExact: true, gateways: 2 });
  expect(by.get('done')).toMatchObject({ lagEvents: 0, lagExact: true, maxLagSeconds: 0 });
});

it('extrapolates beyond the window instead of counting the whole backlog, and says so', async () => {
  const behind = LAG_WINDOW * 3;
  const { lag, groups } = await setup(behind);
  await groups.register('invoicing', 'invoices.*');
  await groups.register('all', '**');
  const by = new Map((await lag.sample([behind, behind], 10)).map((v) => [v.group, v]));
  // A quarter of the window matched: a quarter of the whole distance is reported, marked as an estimate.
  expect(by.get('invoicing')).toMatchObject({ lagEvents: (behind / 4) * 2, lagExact: false });
  // `**` needs no counting: the distance to the head is exact.
  expect(by.get('all')).toMatchObject({ lagEvents: behind * 2, lagExact: true });
});
