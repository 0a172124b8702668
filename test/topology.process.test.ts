/**
 * The deployment topology as local processes: 2 gateways, 3 drainers and ops.
 * Drainers are scaled up and down under load; nothing is lost, duplicated or
 * reordered, and ops reports the result.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '../internal/sdk/index.js';
import { useTestDb } from './harness/db.js';
import { TEST_SECRET, rootToken } from './harness/hub.js';
import { eventually, startBinary, type BinaryProcess } from './harness/process.js';
import { freePort } from './harness/server.js';
import { waitDrained } from './harness/drain.js';
import { verifyExactlyOnceInOrder } from './harness/verify.js';

const t = useTestDb('topology');
const procs = new Set<BinaryProcess>();
const clients: Array<{ close(): Promise<void> }> = [];

afterAll(async () => {
  for (const c of clients) await c.close();
  for (const p of procs) p.kill('SIGKILL');
  await Promise.all([...procs].map((p) => p.exited));
});

it('scales drainers up and down under load across 2 gateways and loses nothing', async () => {
  const db = `${t.name}_topo`;
  const common = {
    MONGO_URL: t.url,
    MONGO_DB: db,
    OUTBOX_PARTITIONS: '8',
    METRICS_HOST: '127.0.0.1',
    METRICS_PORT: '0',
    JWT_SECRET: TEST_SECRET,
    LEASE_TTL: '3s',
    LEASE_RENEW_INTERVAL: '300ms',
    POLL_MAX: '50ms',
    TAIL_POLL_MAX: '50ms',
    GROUP_LEASE_TTL: '3s',
    GROUP_LEASE_RENEW_INTERVAL: '300ms',
  };
  const start = (name: string, env: Record<string, string>): BinaryProcess => {
    const p = startBinary(name, { ...common, ...env });
    procs.add(p);
    return p;
  };
  const drainers = [1, 2, 3].map((i) => start('drainer', { MEMBER_ID: `d${i}` }));
  const gwPorts = [await freePort(), await freePort()];
  const gateways = gwPorts.map((port, i) =>
    start('gateway', { GATEWAY_HOST: '127.0.0.1', GATEWAY_PORT: String(port), MEMBER_ID: `g${i + 1}` }),
  );
  const opsPort = await freePort();
  const ops = start('ops', { OPS_HOST: '127.0.0.1', OPS_PORT: String(opsPort) });
  await Promise.all([
    ...gateways.map((g) => g.waitForLog((l) => l.msg === 'gateway listening')),
    ops.waitForLog((l) => l.msg === 'ops listening'),
  ]);

  const client = (port: number) => {
    const c = createClient<{ 'load.item': { key: string; n: number } }>({ url: `ws://127.0.0.1:${port}/ws`, getToken: () => rootToken() });
    clients.push(c);
    return c;
  };
  const consumed = new Set<string>();
  await client(gwPorts[0] as number).subscribe('load.*', { group: 'sink' }, (_p, event) => void consumed.add(event.id));
  const publishers = gwPorts.map((p) => client(p));

  const ids: string[] = [];
  const counters = new Map<string, number>();
  const TOTAL = 600;
  for (let i = 0; i < TOTAL; i += 20) {
    // Each key stays on one publisher so its order is defined by that publisher's sequence.
    await Promise.all(
      publishers.map(async (pub, which) => {
        for (let j = 0; j < 10; j++) {
          const key = `k${which}-${(i + j) % 7}`;
          const n = (counters.get(key) ?? 0) + 1;
          counters.set(key, n);
          ids.push(await pub.publish('load.item', { key, n }, { key }));
        }
      }),
    );
    if (i === 100) drainers.push(start('drainer', { MEMBER_ID: 'd4' }), start('drainer', { MEMBER_ID: 'd5' }));
    if (i === 300) {
      for (const d of drainers.splice(0, 2)) d.kill('SIGTERM');
    }
    await sleep(10);
  }
  await waitDrained(t.client.db(db), 8, 60_000);
  await verifyExactlyOnceInOrder(t.client.db(db), ids);
  await eventually(() => ids.every((id) => consumed.has(id)), 60_000, 'the group consumer to receive everything');

  const overview = await eventually(
    async () => {
      const o = (await (await fetch(`http://127.0.0.1:${opsPort}/api/overview`)).json()) as {
        backlog: { pending: number; dead: number };
        unownedPartitions: number[];
        leases: { drainers: unknown[]; gateways: unknown[] };
      };
      return o.leases.drainers.length === 3 && o.unownedPartitions.length === 0 ? o : undefined;
    },
    20_000,
    'ops to report 3 drainers and every partition owned',
  );
  expect(overview.backlog).toMatchObject({ pending: 0, dead: 0 });
  expect(overview.leases.gateways).toHaveLength(2);
}, 180_000);
