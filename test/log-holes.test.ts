/**
 * A hole in a partition's sequence (as a broken server or an older version could
 * leave) never freezes the log silently: the gateway keeps serving the other
 * partitions, reports the stall (log line, metrics, event log), ops shows it and
 * an operator fills it, after which the partition flows again.
 */
import { MongoEventLog, type EventInput } from '../internal/eventlog/index.js';
import { createLogger } from '../internal/log/index.js';
import { OpsApp, loadOpsConfig } from '../internal/ops/index.js';
import { createRegistry } from '../internal/telemetry/index.js';
import { useTestDb } from './harness/db.js';
import { rootToken, startHub } from './harness/hub.js';
import { eventually } from './harness/process.js';
import { TestClient } from './harness/ws-client.js';

const t = useTestDb('holes');
const ADMIN = 'admin-token-0123456789';

let n = 0;
const ev = (key: string): EventInput => ({
  id: `hole-${++n}`,
  topic: 'holes.updated',
  key,
  payload: { n },
  headers: {},
  createdAt: new Date(),
});

it('keeps the other partitions flowing, reports the stall, and resumes once an operator fills the hole', async () => {
  const dbName = `${t.name}_main`;
  const db = t.client.db(dbName);
  const hub = await startHub(t.url, dbName, { LOG_STALL_AFTER: '300ms' }, { drainer: false });
  const ops = new OpsApp(
    loadOpsConfig({
      MONGO_URL: t.url,
      MONGO_DB: dbName,
      OPS_HOST: '127.0.0.1',
      OPS_PORT: '0',
      OUTBOX_PARTITIONS: '4',
      OPS_ADMIN_TOKEN: ADMIN,
      OPS_REPAIR_MIN_AGE: '0',
    }),
    { log: createLogger({ level: 'error' }), registry: createRegistry('ops') },
  );
  await ops.start();
  const client = await TestClient.authed(hub.port, await rootToken());
  try {
    expect(await client.request({ op: 'SUBSCRIBE', sub: 's', topic: 'holes.*' })).toMatchObject({ op: 'OK' });
    const log = new MongoEventLog(db);
    await log.append(0, 1, [ev('a'), ev('a'), ev('a')]);
    await log.append(1, 1, [ev('b')]);
    await eventually(() => client.events('s').length === 4, 10_000, 'the first events');

    // Seqs 5 and 6 of partition 0 without 4, written behind the log's back.
    const after = [ev('a'), ev('a')];
    await db.collection('events').insertMany(
      after.map((e, i) => ({
        _id: e.id as never,
        ...e,
        id: undefined,
        partition: 0,
        seq: 5 + i,
        epoch: 1,
        w: 'x',
        publishedAt: new Date(),
      })),
    );
    await log.append(1, 1, [ev('b'), ev('b')]);
    // Partition 1 is not held up by partition 0's hole.
    await eventually(() => client.events('s').length === 6, 10_000, 'partition 1 to keep flowing');

    const metrics = async () => (await fetch(`http://127.0.0.1:${hub.gateway.telemetryPort}/metrics`)).text();
    await eventually(async () => /gateway_log_stalled_partitions\{[^}]*\} 1/.test(await metrics()), 10_000, 'the stall metric');
    expect(await metrics()).toMatch(/gateway_log_missing_seq\{[^}]*partition="0"[^}]*\} 4/);
    const base = `http://127.0.0.1:${ops.port}`;
    const stalls = await eventually(
      async () => {
        const r = (await (await fetch(`${base}/api/stalls`)).json()) as Array<{
          partition: number;
          seq: number;
          gap: { from: number; to: number } | null;
        }>;
        return r.length > 0 ? r : undefined;
      },
      10_000,
      'ops to show the stall',
    );
    expect(stalls[0]).toMatchObject({ partition: 0, seq: 4, gap: { from: 4, to: 4 } });
    const overview = (await (await fetch(`${base}/api/overview`)).json()) as { stalledPartitions: unknown[] };
    expect(overview.stalledPartitions).toHaveLength(1);

    // Repairs are for admins only, and name what they filled.
    expect((await fetch(`${base}/api/partitions/0/repair?after=3`, { method: 'POST' })).status).toBe(401);
    const repaired = await fetch(`${base}/api/partitions/0/repair?after=3`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(repaired.status).toBe(200);
    expect(await repaired.json()).toEqual({ partition: 0, filled: { from: 4, to: 4 } });
    const again = await fetch(`${base}/api/partitions/0/repair?after=3`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
    expect(again.status).toBe(404);

    // The partition flows again; the filler itself is never delivered.
    await eventually(() => client.events('s').length === 8, 10_000, 'partition 0 to resume');
    expect(client.events('s').map((e) => e.event.id)).not.toContain('gap:0:4');
    await eventually(async () => /gateway_log_stalled_partitions\{[^}]*\} 0/.test(await metrics()), 10_000, 'the stall metric to clear');
    await eventually(async () => (await log.stalls()).length === 0, 10_000, 'the stall report to clear');
  } finally {
    client.ws.terminate();
    await ops.stop();
    await hub.stop();
  }
});
