/**
 * Partition leases with fencing epochs, and the coordinator that shares a
 * group's partitions among live members.
 *
 * Invariants: see {@link LeaseStore} (one holder, epochs only grow, renew and
 * release need the same holder and epoch) and {@link PartitionCoordinator}
 * (fair share ceil(P / members), only surplus moves, stop releases everything).
 * The epoch of a lease is the fencing token downstream writers must present.
 */
import type { EnvReader } from '../config/index.js';
import { LeaseError } from './errors.js';
import type { LeaseStore } from './types.js';
import { MongoLeaseStore } from './mongo.js';

export { LeaseError, type LeaseErrorCode } from './errors.js';

export type { Lease, LeaseStore, Member } from './types.js';
export { MongoLeaseStore, migrateLeases, DEFAULT_LEASE_COLLECTIONS, type LeaseCollections } from './mongo.js';
export { MemoryLeaseStore } from './memory.js';
export { PartitionCoordinator, type CoordinatorHandlers, type CoordinatorMetrics, type CoordinatorOptions } from './coordinator.js';

/** Where leases live. */
export type LeaseBackend = 'mongodb' | 'kubernetes';

/** The Kubernetes client: an optional peer dependency of the package, needed only by that backend. */
export const KUBERNETES_CLIENT_PACKAGE = '@kubernetes/client-node@1.4.0';

/** Every lease backend, for configuration validation. */
export const LEASE_BACKENDS: readonly LeaseBackend[] = ['mongodb', 'kubernetes'];

/**
 * Opens the configured {@link LeaseStore}. The Kubernetes client is loaded only
 * when that backend is chosen (it is an optional dependency: `BACKEND_UNAVAILABLE`
 * names it when it is not installed); without an explicit `kubeConfig` it loads
 * the in-cluster service account (or KUBECONFIG / ~/.kube/config).
 */
export async function openLeaseStore(options: {
  backend: LeaseBackend;
  db: import('mongodb').Db;
  namespace: string;
  prefix: string;
  kubeConfig?: import('@kubernetes/client-node').KubeConfig;
}): Promise<LeaseStore> {
  if (options.backend === 'mongodb') return new MongoLeaseStore(options.db);
  const [{ KubernetesLeaseStore }, { KubeConfig }] = await Promise.all([
    import('./kubernetes.js'),
    import('@kubernetes/client-node'),
  ]).catch((err: unknown) => {
    if ((err as { code?: unknown }).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    throw new LeaseError(
      'BACKEND_UNAVAILABLE',
      `LEASE_BACKEND=kubernetes needs the optional package ${KUBERNETES_CLIENT_PACKAGE}, which is not installed: ` +
        `run 'npm install ${KUBERNETES_CLIENT_PACKAGE}' next to outbox-hub (the image has it), or use LEASE_BACKEND=mongodb`,
      { cause: err },
    );
  });
  let kubeConfig = options.kubeConfig;
  if (!kubeConfig) {
    kubeConfig = new KubeConfig();
    kubeConfig.loadFromDefault();
  }
  return new KubernetesLeaseStore({ kubeConfig, namespace: options.namespace, prefix: options.prefix });
}

/** LEASE_BACKEND, LEASE_NAMESPACE (default POD_NAMESPACE, else default), LEASE_PREFIX: shared by drainer and gateway. */
export function leaseSettings(
  r: EnvReader,
  env: Readonly<Record<string, string | undefined>>,
): { leaseBackend: LeaseBackend; leaseNamespace: string; leasePrefix: string } {
  return {
    leaseBackend: r.oneOf('LEASE_BACKEND', LEASE_BACKENDS, { default: 'mongodb' }),
    leaseNamespace: r.string('LEASE_NAMESPACE', { default: env['POD_NAMESPACE'] || 'default', pattern: /^[a-z0-9-]{1,63}$/ }),
    leasePrefix: r.string('LEASE_PREFIX', { default: 'outbox-hub', pattern: /^[a-z0-9-]{1,40}$/ }),
  };
}
