/**
 * The Kubernetes Lease backend through @kubernetes/client-node against a real
 * kube-apiserver (etcd + kube-apiserver built by the Makefile; see
 * test/harness/kube-server.ts): the LeaseStore contract as the admin in fresh
 * namespaces, and once more with the token of the chart's own ServiceAccount
 * after a `helm install`, which proves the chart's Role is enough and is refused
 * everywhere else. The same contract runs against MongoDB in lease.mongo.test.ts.
 */
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { PartitionCoordinator, openLeaseStore, type Lease, type LeaseStore } from '../internal/lease/index.js';
import { silentLogger } from '../internal/log/index.js';
import { leaseStoreContract } from './contract/lease.js';
import { eventually } from './harness/process.js';
import {
  createNamespace,
  describeKube,
  helm,
  kubeConfigFor,
  kubeServer,
  serviceAccountToken,
  statusOf,
  type KubeEndpoint,
} from './harness/kube.js';

const open = (kubeConfig: KubeConfig, namespace: string, prefix = 'hub'): Promise<LeaseStore> =>
  openLeaseStore({ backend: 'kubernetes', kubeConfig, namespace, prefix, db: undefined as never });

describeKube('Kubernetes Lease backend on a real kube-apiserver', () => {
  let endpoint: KubeEndpoint;
  let admin: KubeConfig;
  let n = 0;
  beforeAll(async () => {
    endpoint = await kubeServer();
    admin = kubeConfigFor(endpoint);
  }, 180_000);

  leaseStoreContract('KubernetesLeaseStore (admin, a fresh namespace per test)', async () => {
    const ns = `lease-${++n}`;
    await createNamespace(admin, ns);
    return open(admin, ns);
  });

  it('fails, rather than pretending, in a namespace that does not exist', async () => {
    const store = await open(admin, 'no-such-namespace');
    // The API server answers 404 for the namespace on create; nothing is held.
    await expect(store.acquire('drainer', 0, 'alice', 10_000)).rejects.toMatchObject({ code: 404 });
    await expect(store.heartbeat('drainer', 'alice', 10_000)).rejects.toMatchObject({ code: 404 });
    expect(await store.list('drainer')).toEqual([]);
  });

  it('keeps two releases (prefixes) in one namespace apart, and group names a Lease name cannot spell', async () => {
    await createNamespace(admin, 'shared');
    const a = await open(admin, 'shared', 'release-a');
    const b = await open(admin, 'shared', 'release-b');
    expect(await a.acquire('drainer', 0, 'a1', 10_000)).toMatchObject({ holder: 'a1', epoch: 1 });
    expect(await b.acquire('drainer', 0, 'b1', 10_000)).toMatchObject({ holder: 'b1', epoch: 1 });
    await a.heartbeat('drainer', 'a1', 10_000);
    await b.heartbeat('drainer', 'b1', 10_000);
    expect((await a.list('drainer')).map((l) => l.holder)).toEqual(['a1']);
    expect((await b.members('drainer')).map((m) => m.member)).toEqual(['b1']);

    // Consumer groups are 1-64 characters of [A-Za-z0-9_.-], coordinated as `group:<name>`:
    // longer than a label value, and case or punctuation must not merge two groups.
    const long = `group:${'Billing_v2.'.repeat(6)}abcd`;
    const groups = [long, 'group:Orders', 'group:orders', 'group:a_b', 'group:a.b'];
    for (const [i, g] of groups.entries()) {
      expect(await a.acquire(g, 3, `m${i}`, 10_000)).toMatchObject({ group: g, holder: `m${i}`, epoch: 1 });
      await a.heartbeat(g, `Member_${i}.${'x'.repeat(100)}`, 10_000);
    }
    for (const [i, g] of groups.entries()) {
      expect((await a.list(g)).map((l) => [l.partition, l.holder])).toEqual([[3, `m${i}`]]);
      expect((await a.members(g)).map((m) => m.member)).toEqual([`Member_${i}.${'x'.repeat(100)}`]);
    }
  });

  it('lets two coordinators share partitions through Leases', async () => {
    await createNamespace(admin, 'share');
    const store = await open(admin, 'share');
    const make = (member: string) => {
      const owned = new Set<number>();
      const c = new PartitionCoordinator({
        store,
        group: 'drainer',
        member,
        partitions: 6,
        ttlMs: 3_000,
        intervalMs: 100,
        log: silentLogger,
        handlers: {
          acquired: (l: Lease) => void owned.add(l.partition),
          lost: (p) => void owned.delete(p),
          releasing: (p) => Promise.resolve(void owned.delete(p)),
        },
      });
      return { c, owned };
    };
    const a = make('a');
    const b = make('b');
    await a.c.start();
    await b.c.start();
    await eventually(() => Promise.resolve(a.owned.size === 3 && b.owned.size === 3), 10_000, 'a 3/3 split');
    expect([...a.owned].some((p) => b.owned.has(p))).toBe(false);
    await a.c.stop();
    await eventually(() => Promise.resolve(b.owned.size === 6), 10_000, 'b to take everything after a stopped');
    await b.c.stop();
  });

  describe("with the chart's ServiceAccount token", () => {
    const NS = 'lease-chart';
    let sa: KubeConfig;
    let p = 0;
    beforeAll(async () => {
      await createNamespace(admin, 'elsewhere');
      await helm(
        endpoint,
        'install',
        'hub',
        'helm/outbox-hub',
        '--namespace',
        NS,
        '--create-namespace',
        '--set',
        'mongodb.url=mongodb://mongo:27017/?replicaSet=rs0',
        '--set',
        'jwt.secret=0123456789abcdef0123456789abcdef',
        '--set',
        'leaseBackend=kubernetes',
      );
      // The token a drainer pod would mount: the chart's ServiceAccount, bound only to the chart's Role.
      sa = kubeConfigFor(endpoint, await serviceAccountToken(admin, NS, 'hub-outbox-hub'), NS);
    }, 120_000);

    // One namespace (the Role's), so each test gets its own prefix, as another release would.
    leaseStoreContract('KubernetesLeaseStore (chart ServiceAccount, Role only)', () => open(sa, NS, `sa-${++p}`));

    it('is refused outside its namespace and for anything but leases', async () => {
      const elsewhere = await open(sa, 'elsewhere');
      await expect(elsewhere.acquire('drainer', 0, 'x', 10_000)).rejects.toMatchObject({ code: 403 });
      await expect(elsewhere.list('drainer')).rejects.toMatchObject({ code: 403 });
      const core = sa.makeApiClient(CoreV1Api);
      const denied = async (call: Promise<unknown>) =>
        statusOf(
          await call.then(
            () => undefined,
            (err: unknown) => err,
          ),
        );
      expect(await denied(core.listNamespacedSecret({ namespace: NS }))).toBe(403);
      expect(await denied(core.listNamespacedConfigMap({ namespace: NS }))).toBe(403);
      expect(await denied(core.listNamespacedPod({ namespace: NS }))).toBe(403);
      // And within the Role it works as the contract above showed.
      expect(await (await open(sa, NS, 'probe')).acquire('drainer', 1, 'x', 10_000)).toMatchObject({ holder: 'x' });
    });
  });
});
