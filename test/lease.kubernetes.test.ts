/**
 * The Kubernetes Lease backend through @kubernetes/client-node over real HTTP.
 * No kube-apiserver can run on this machine (no Docker engine, no downloads),
 * so this runs against test/harness/fake-kube.ts, an in-process stand-in that
 * implements the Lease endpoints and resourceVersion compare-and-swap. The same
 * contract suite runs against the MongoDB backend in lease.mongo.test.ts.
 */
import { PartitionCoordinator, openLeaseStore, type Lease, type LeaseStore } from '../internal/lease/index.js';
import { silentLogger } from '../internal/log/index.js';
import { leaseStoreContract } from './contract/lease.js';
import { startFakeKube, type FakeKube } from './harness/fake-kube.js';
import { eventually } from './harness/process.js';

let kube: FakeKube;
let n = 0;
beforeAll(async () => {
  kube = await startFakeKube();
});
afterAll(async () => kube.close());

const k8s = (namespace: string): Promise<LeaseStore> =>
  openLeaseStore({ backend: 'kubernetes', kubeConfig: kube.kubeConfig, namespace, prefix: 'hub', db: undefined as never });

leaseStoreContract('KubernetesLeaseStore (in-process fake of the coordination.k8s.io/v1 API)', () => k8s(`ns${++n}`));

it('lets two coordinators share partitions through Kubernetes Leases', async () => {
  const store = await k8s('share');
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
        releasing: async (p) => void owned.delete(p),
      },
    });
    return { c, owned };
  };
  const a = make('a');
  const b = make('b');
  await a.c.start();
  await b.c.start();
  await eventually(async () => a.owned.size === 3 && b.owned.size === 3, 5_000, 'a 3/3 split');
  expect([...a.owned].some((p) => b.owned.has(p))).toBe(false);
  await a.c.stop();
  await eventually(async () => b.owned.size === 6, 5_000, 'b to take everything after a stopped');
  await b.c.stop();
});
