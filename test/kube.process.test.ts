/**
 * Kubernetes lease mode of the real binaries, as processes: drainers and a
 * gateway with LEASE_BACKEND=kubernetes against a real kube-apiserver (see
 * test/harness/kube-server.ts) and the run's MongoDB-wire server. They use the
 * token of the chart's own ServiceAccount (after a `helm install` with
 * `leaseBackend=kubernetes`) and the namespace and prefix the chart gives them,
 * so the chart's Role is proven enough for the binaries, not only for the adapter.
 * Lease ownership is read from the API server's Lease objects.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoordinationV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { createOutbox, migrateOutbox, type Outbox } from '../internal/outbox/index.js';
import { useTestDb } from './harness/db.js';
import { rootToken } from './harness/hub.js';
import { describeKube, helm, kubeConfigFor, kubeconfigText, kubeServer, serviceAccountToken, type KubeEndpoint } from './harness/kube.js';
import { eventually, startBinary, type BinaryProcess } from './harness/process.js';
import { freePort } from './harness/server.js';
import { waitDrained } from './harness/drain.js';
import { verifyExactlyOnceInOrder } from './harness/verify.js';
import { TestClient } from './harness/ws-client.js';

const NS = 'lease-processes';
const PREFIX = 'hub-outbox-hub';
const GROUP_NAME = 'outbox-hub.io/group-name';

const t = useTestDb('kubeproc');
const running = new Set<BinaryProcess>();
const clients: TestClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.terminate();
  for (const p of running) p.kill('SIGKILL');
  await Promise.all([...running].map((p) => p.exited));
  running.clear();
});

describeKube('drainer and gateway with LEASE_BACKEND=kubernetes on a real kube-apiserver', () => {
  let endpoint: KubeEndpoint;
  let admin: KubeConfig;
  let kubeconfig: string;
  beforeAll(async () => {
    endpoint = await kubeServer();
    admin = kubeConfigFor(endpoint);
    await helm(
      endpoint,
      'install',
      'hub',
      'helm/outbox-hub',
      '--namespace',
      NS,
      '--create-namespace',
      '--set',
      'mongodb.url=mongodb://unused:27017/',
      '--set',
      'jwt.secret=0123456789abcdef0123456789abcdef',
      '--set',
      'leaseBackend=kubernetes',
    );
    kubeconfig = join(endpoint.dir, 'lease-processes.kubeconfig');
    writeFileSync(kubeconfig, kubeconfigText(endpoint, await serviceAccountToken(admin, NS, PREFIX), NS), { mode: 0o600 });
  }, 180_000);

  /** The environment the chart gives the pods, with a kubeconfig standing in for the mounted token. */
  const kubeEnv = (member: string): Record<string, string> => ({
    LEASE_BACKEND: 'kubernetes',
    KUBECONFIG: kubeconfig,
    POD_NAMESPACE: NS,
    LEASE_PREFIX: PREFIX,
    MEMBER_ID: member,
    MONGO_URL: t.url,
    METRICS_HOST: '127.0.0.1',
    METRICS_PORT: '0',
  });
  const start = (name: 'drainer' | 'gateway' | 'ops', env: Record<string, string>): BinaryProcess => {
    const p = startBinary(name, env);
    running.add(p);
    return p;
  };
  /** Partition Leases of `group` in the namespace, by partition. */
  const leases = async (group: string): Promise<Map<number, V1Lease>> => {
    const res = await admin
      .makeApiClient(CoordinationV1Api)
      .listNamespacedLease({ namespace: NS, labelSelector: `outbox-hub.io/prefix=${PREFIX},outbox-hub.io/partition` });
    return new Map(
      res.items
        .filter((l) => l.metadata?.annotations?.[GROUP_NAME] === group)
        .map((l) => [Number(l.metadata?.labels?.['outbox-hub.io/partition']), l]),
    );
  };
  const live = (l: V1Lease | undefined): boolean => Number(l?.metadata?.annotations?.['outbox-hub.io/expires-at-ms'] ?? 0) > Date.now();
  const holders = (m: Map<number, V1Lease>): string[] => [...m.values()].filter(live).map((l) => l.spec?.holderIdentity ?? '');

  async function produce(outbox: Outbox, total: number, keys: number, onBatch: (written: number) => void): Promise<string[]> {
    const ids: string[] = [];
    const counters = new Map<string, number>();
    for (let written = 0; written < total; written += 50) {
      const batch = Array.from({ length: 50 }, (_, i) => {
        const key = `key-${(written + i) % keys}`;
        const n = (counters.get(key) ?? 0) + 1;
        counters.set(key, n);
        return { topic: 'orders.updated', key, payload: { key, n } };
      });
      ids.push(...(await outbox.addMany(batch)).map((r) => r.id));
      onBatch(written + batch.length);
      await sleep(5);
    }
    return ids;
  }

  it('shares the partitions between two drainers; one is SIGKILLed and the other takes over: nothing lost, duplicated or reordered', async () => {
    const dbName = `${t.name}_drain`;
    const db = t.client.db(dbName);
    await migrateOutbox(db);
    const outbox = createOutbox(db, { partitions: 8 });
    // Batches of at most 100: FerretDB 1.24 runs an ordered insertMany in internal batches of 100
    // and goes on with the next batch after one fails, which MongoDB never does; the takeover's
    // first append (which starts with messages the killed drainer had appended) then leaves a
    // gap of 100 sequence numbers and puts later messages first. Not a lease matter: it happens
    // with LEASE_BACKEND=mongodb too.
    const env = {
      MONGO_DB: dbName,
      OUTBOX_PARTITIONS: '8',
      DRAINER_BATCH_SIZE: '100',
      // 4 s: a renewal held up past the TTL on a loaded machine would move a lease of the
      // survivor too, which the epochs below assert did not happen (one unexplained failure here).
      LEASE_TTL: '4s',
      LEASE_RENEW_INTERVAL: '300ms',
      POLL_MAX: '100ms',
    };
    const d1 = start('drainer', { ...kubeEnv('drainer-1'), ...env });
    const d2 = start('drainer', { ...kubeEnv('drainer-2'), ...env });
    // The split is visible in the API server: 8 live Leases, 4 held by each.
    await eventually(
      async () => {
        const h = holders(await leases('drainer'));
        return h.length === 8 && h.filter((x) => x === 'drainer-1').length === 4;
      },
      30_000,
      'drainer-1 and drainer-2 to hold 4 Leases each',
    );
    const before = await leases('drainer');

    const ids = await produce(outbox, 1000, 23, (written) => {
      if (written === 400) d2.kill('SIGKILL');
    });
    expect(await d2.exited).toBe('SIGKILL');
    await waitDrained(db, 8, 90_000);
    const check = await verifyExactlyOnceInOrder(db, ids);
    expect(check).toEqual({ events: 1000, partitions: 8 });

    // drainer-1 took over every Lease of drainer-2, each under a new epoch (leaseTransitions).
    const after = await leases('drainer');
    expect(holders(after)).toEqual(Array(8).fill('drainer-1'));
    for (const [p, l] of before) {
      const was = l.spec?.holderIdentity;
      const epoch = after.get(p)?.spec?.leaseTransitions ?? 0;
      if (was === 'drainer-2') expect(epoch).toBeGreaterThan(l.spec?.leaseTransitions ?? 0);
      else expect(epoch).toBe(l.spec?.leaseTransitions);
    }
    expect(d1.child.exitCode).toBeNull();
  }, 180_000);

  it('keeps a gateway consumer group and its presence in Leases, and releases them on SIGTERM', async () => {
    const dbName = `${t.name}_gw`;
    const env = { MONGO_DB: dbName, OUTBOX_PARTITIONS: '4', POLL_MAX: '30ms' };
    start('drainer', { ...kubeEnv('drainer-g'), ...env });
    const port = await freePort();
    const gw = start('gateway', {
      ...kubeEnv('gateway-1'),
      ...env,
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_PORT: String(port),
      JWT_SECRET: 'outbox-hub-test-secret-at-least-32-bytes-long',
      TAIL_POLL_MAX: '30ms',
      GROUP_LEASE_TTL: '3s',
      GROUP_LEASE_RENEW_INTERVAL: '300ms',
    });
    await gw.waitForLog((l) => l.msg === 'gateway listening', 30_000);
    const c = await TestClient.authed(port, await rootToken());
    clients.push(c);
    const seen: string[] = [];
    c.ws.on('message', (data) => {
      const f = JSON.parse((data as Buffer).toString()) as { op: string; event?: { id: string } };
      if (f.op !== 'EVENT' || !f.event) return;
      seen.push(f.event.id);
      c.ws.send(JSON.stringify({ op: 'ACK', id: `a${seen.length}`, sub: 's', eventId: f.event.id }));
    });
    // A group name a Lease name cannot spell as is (case, underscore, dot).
    expect((await c.request({ op: 'SUBSCRIBE', sub: 's', topic: 'work.*', group: 'Billing_V2.eu' })).op).toBe('OK');
    await eventually(
      async () => holders(await leases('group:Billing_V2.eu')).join() === 'gateway-1,gateway-1,gateway-1,gateway-1',
      20_000,
      'the gateway to hold the group',
    );

    const pub = await TestClient.authed(port, await rootToken());
    clients.push(pub);
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const ok = (await pub.request({ op: 'PUBLISH', topic: 'work.item', key: `k${i % 3}`, payload: i })) as unknown as { eventId: string };
      ids.push(ok.eventId);
    }
    await eventually(() => Promise.resolve(ids.every((id) => seen.includes(id))), 30_000, 'every event delivered to the group');
    expect(new Set(seen).size).toBe(seen.length);

    const presence = async () =>
      (
        await admin
          .makeApiClient(CoordinationV1Api)
          .listNamespacedLease({ namespace: NS, labelSelector: `outbox-hub.io/prefix=${PREFIX},outbox-hub.io/member-of` })
      ).items.filter((l) => l.metadata?.annotations?.[GROUP_NAME] === 'gateway' && live(l));
    expect((await presence()).map((l) => l.spec?.holderIdentity)).toEqual(['gateway-1']);

    gw.kill('SIGTERM');
    expect(await gw.exited).toBe(0);
    // Released, not left to expire: the group's Leases have no holder and the presence Lease is gone.
    expect([...(await leases('group:Billing_V2.eu')).values()].map((l) => l.spec?.holderIdentity)).toEqual(['', '', '', '']);
    expect(await presence()).toEqual([]);
  }, 120_000);

  it('ops with LEASE_BACKEND=kubernetes lists the Leases, refuses deleting a served group, and counts its gateways', async () => {
    const dbName = `${t.name}_ops`;
    const env = { MONGO_DB: dbName, OUTBOX_PARTITIONS: '4', POLL_MAX: '30ms' };
    start('drainer', { ...kubeEnv('drainer-o'), ...env, LEASE_TTL: '3s', LEASE_RENEW_INTERVAL: '300ms' });
    const port = await freePort();
    const gw = start('gateway', {
      ...kubeEnv('gateway-o'),
      ...env,
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_PORT: String(port),
      JWT_SECRET: 'outbox-hub-test-secret-at-least-32-bytes-long',
      TAIL_POLL_MAX: '30ms',
      GROUP_LEASE_TTL: '3s',
      GROUP_LEASE_RENEW_INTERVAL: '300ms',
      ACK_TIMEOUT: '10m',
    });
    const opsPort = await freePort();
    const admin = 'ops-admin-token-0123456789';
    start('ops', {
      ...kubeEnv('ops-o'),
      ...env,
      OPS_HOST: '127.0.0.1',
      OPS_PORT: String(opsPort),
      OPS_ADMIN_TOKEN: admin,
      OPS_SAMPLE_INTERVAL: '500ms',
    });
    await gw.waitForLog((l) => l.msg === 'gateway listening', 30_000);
    // A member that never acks: the group has lag while a gateway serves it.
    const c = await TestClient.authed(port, await rootToken());
    clients.push(c);
    expect((await c.request({ op: 'SUBSCRIBE', sub: 's', topic: 'served.*', group: 'served', maxInFlight: 1 })).op).toBe('OK');
    for (let i = 0; i < 5; i++) expect((await c.request({ op: 'PUBLISH', topic: 'served.x', key: `k${i}`, payload: i })).op).toBe('OK');
    const ops = `http://127.0.0.1:${opsPort}`;
    const json = async (path: string): Promise<Record<string, unknown>> =>
      (await (await fetch(`${ops}${path}`)).json()) as Record<string, unknown>;

    // The partition Leases and the gateways as the API server holds them.
    await eventually(
      async () => {
        const l = (await json('/api/leases').catch(() => ({}))) as {
          partitions?: Array<{ holder: string | null }>;
          gateways?: Array<{ member: string }>;
        };
        return l.partitions?.every((p) => p.holder === 'drainer-o') === true && l.gateways?.some((g) => g.member === 'gateway-o') === true;
      },
      30_000,
      "ops to list the drainer's Leases and the gateway",
    );
    // The group is served: deleting it is refused, and the metrics say one gateway serves it while it lags.
    const del = await fetch(`${ops}/api/groups/served`, { method: 'DELETE', headers: { authorization: `Bearer ${admin}` } });
    expect(del.status).toBe(409);
    expect(await del.json()).toMatchObject({ error: 'GROUP_ACTIVE' });
    await eventually(
      async () => {
        const m = await (await fetch(`${ops}/metrics`)).text();
        return (
          /ops_group_gateways\{group="served",binary="ops"\} 1\b/.test(m) &&
          /ops_group_lag_events\{group="served",binary="ops"\} [1-9]/.test(m)
        );
      },
      30_000,
      'ops_group_gateways 1 and lag for the served group (OutboxConsumerGroupAbandoned stays quiet: it needs 0 gateways)',
    );
    // Once nobody serves it, ops sees that too, and the group can go.
    c.ws.close();
    await eventually(
      async () => {
        const r = await fetch(`${ops}/api/groups/served`, { method: 'DELETE', headers: { authorization: `Bearer ${admin}` } });
        return r.status === 200;
      },
      30_000,
      'the group to be deletable once its last member left',
    );
  }, 120_000);
});
