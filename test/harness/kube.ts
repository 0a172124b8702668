/**
 * Test helpers around the run's real Kubernetes API server (kube-server.ts):
 * a `describe` that is skipped loudly when etcd or kube-apiserver are not built,
 * clients for the admin or any token, namespaces, service-account tokens, CRDs.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ApiException,
  ApiextensionsV1Api,
  CoreV1Api,
  KubeConfig,
  loadYaml,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { kubeToolPaths, missingKubeTools, sharedKubeServer, type KubeEndpoint } from './kube-server.js';

export { kubeconfigText, type KubeEndpoint } from './kube-server.js';

const execFileAsync = promisify(execFile);

/**
 * `describe`, or `describe.skip` with a message on stderr naming what is missing
 * (never a pass): Kubernetes tests need the binaries `make kube-tools` builds.
 */
export function describeKube(name: string, fn: () => void, needs: { crds?: boolean } = {}): void {
  const missing = missingKubeTools(needs);
  if (missing.length === 0) return describe(name, fn);
  process.stderr.write(`\n  SKIPPED (not built: ${missing.join(', ')}; run 'make kube-tools'): ${name}\n`);
  describe.skip(name, fn);
}

/** The run's API server (started on first use). */
export function kubeServer(): Promise<KubeEndpoint> {
  return sharedKubeServer();
}

/** A client configuration for `token` (the admin's by default). */
export function kubeConfigFor(endpoint: KubeEndpoint, token = endpoint.adminToken, namespace = 'default'): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'test', server: endpoint.server, caFile: endpoint.caFile, skipTLSVerify: false }],
    users: [{ name: 'user', token }],
    contexts: [{ name: 'test', cluster: 'test', user: 'user', namespace }],
    currentContext: 'test',
  });
  return kc;
}

/** The HTTP status of a client-node API error, else undefined. */
export function statusOf(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

/** Creates namespace `name` (idempotent). */
export async function createNamespace(kc: KubeConfig, name: string): Promise<void> {
  try {
    await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name } } });
  } catch (err) {
    if (statusOf(err) !== 409) throw err;
  }
}

/** A short-lived token of ServiceAccount `namespace/name` through the TokenRequest API. */
export async function serviceAccountToken(kc: KubeConfig, namespace: string, name: string): Promise<string> {
  const res = await kc
    .makeApiClient(CoreV1Api)
    .createNamespacedServiceAccountToken({ name, namespace, body: { spec: { audiences: [], expirationSeconds: 3600 } } });
  const token = res.status?.token;
  if (!token) throw new Error(`no token issued for ${namespace}/${name}`);
  return token;
}

/** The prometheus-operator CRDs the Makefile copied (ServiceMonitor, PodMonitor, PrometheusRule). */
export function prometheusCrds(): V1CustomResourceDefinition[] {
  const dir = kubeToolPaths().crds;
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  if (files.length === 0) throw new Error(`no CRDs in ${dir}: run 'make kube-tools'`);
  // Through the client's model: it serialises by its own field names (a plain parsed object would lose `x-kubernetes-*`).
  return files.map((f) => loadYaml<V1CustomResourceDefinition>(readFileSync(join(dir, f), 'utf8')));
}

/** Creates `crds` (those that exist are left alone) and waits until each is Established. */
export async function applyCrds(kc: KubeConfig, crds: readonly V1CustomResourceDefinition[], timeoutMs = 30_000): Promise<void> {
  const api = kc.makeApiClient(ApiextensionsV1Api);
  for (const body of crds) {
    try {
      await api.createCustomResourceDefinition({ body });
    } catch (err) {
      if (statusOf(err) !== 409) throw err;
    }
  }
  const deadline = Date.now() + timeoutMs;
  for (const crd of crds) {
    const name = crd.metadata?.name as string;
    for (;;) {
      const cur = await api.readCustomResourceDefinition({ name });
      if (cur.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      if (Date.now() > deadline) throw new Error(`CRD ${name} not Established within ${timeoutMs} ms`);
      await sleep(100);
    }
  }
}

/** helm (built by the Makefile) against the API server as admin; resolves with stdout, rejects with stderr. */
export async function helm(endpoint: KubeEndpoint, ...args: string[]): Promise<string> {
  const bin = process.env['HELM_BIN'] ?? resolve('.tools/bin/helm');
  try {
    const { stdout } = await execFileAsync(bin, [...args, '--kubeconfig', endpoint.adminKubeconfig], {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      env: { ...process.env, HELM_CACHE_HOME: join(endpoint.dir, 'helm-cache'), HELM_CONFIG_HOME: join(endpoint.dir, 'helm-config') },
    });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`helm ${args.join(' ')} failed: ${e.stderr || e.message}`, { cause: err });
  }
}
