/**
 * End to end on a real Kubernetes (K3s in Docker via testcontainers): build the
 * image, load it into k3s, `helm install` with the embedded MongoDB and
 * Kubernetes leases, port-forward to ops and the gateway, publish through the
 * gateway, see it in ops, and scale the drainers.
 *
 * Runs only where a Docker engine answers; elsewhere it is skipped with a
 * message naming the missing engine (this development machine has none, so
 * this file has not run here).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AppsV1Api, CoreV1Api, KubeConfig, PortForward } from '@kubernetes/client-node';
import { createClient } from '../internal/sdk/index.js';
import { eventually } from './harness/process.js';
import { dockerReachable } from './harness/server.js';
import { testToken } from './harness/hub.js';

const docker = await dockerReachable();
const itDocker = docker ? it : it.skip;
if (!docker) process.stderr.write('\n  SKIPPED (no Docker engine reachable): K3s end-to-end deployment test\n');

const SECRET = 'e2e-secret-0123456789abcdef0123456789ab';
const ADMIN = 'e2e-admin-token-0123456789';

/** Forwards a local port to a pod port through the API server (kubectl port-forward, in-process). */
async function forward(kc: KubeConfig, namespace: string, selector: string, port: number): Promise<{ port: number; server: Server }> {
  const core = kc.makeApiClient(CoreV1Api);
  const pods = await core.listNamespacedPod({ namespace, labelSelector: selector });
  const pod = pods.items.find((p) => p.status?.phase === 'Running')?.metadata?.name;
  if (!pod) throw new Error(`no running pod for ${selector}`);
  const pf = new PortForward(kc);
  const server = createServer((socket) => void pf.portForward(namespace, pod, [port], socket, null, socket));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as { port: number }).port, server };
}

itDocker(
  'installs with helm on k3s, serves ops through a port-forward, publishes through the gateway, and scales drainers',
  async () => {
    const { K3sContainer } = await import('@testcontainers/k3s');
    const dir = mkdtempSync(join(tmpdir(), 'k3s-e2e-'));
    execFileSync('docker', ['build', '-t', 'outbox-hub:e2e', '.'], { stdio: 'inherit' });
    execFileSync('docker', ['save', 'outbox-hub:e2e', '-o', join(dir, 'image.tar')]);
    const k3s = await new K3sContainer('rancher/k3s:v1.31.2-k3s1').start();
    const servers: Server[] = [];
    try {
      await k3s.copyFilesToContainer([{ source: join(dir, 'image.tar'), target: '/tmp/image.tar' }]);
      await k3s.exec(['ctr', '-n', 'k8s.io', 'images', 'import', '/tmp/image.tar']);
      const kubeconfig = join(dir, 'kubeconfig');
      writeFileSync(kubeconfig, k3s.getKubeConfig());
      const helm = process.env['HELM_BIN'] ?? resolve('.tools/bin/helm');
      execFileSync(
        helm,
        [
          'install',
          'hub',
          'helm/outbox-hub',
          '--kubeconfig',
          kubeconfig,
          '--namespace',
          'events',
          '--create-namespace',
          '--wait',
          '--timeout',
          '8m',
          '--set',
          'image.repository=outbox-hub',
          '--set',
          'image.tag=e2e',
          '--set',
          'image.pullPolicy=Never',
          '--set',
          'mongodb.embedded.enabled=true',
          '--set',
          `jwt.secret=${SECRET}`,
          '--set',
          `ops.adminToken=${ADMIN}`,
          '--set',
          'leaseBackend=kubernetes',
        ],
        { stdio: 'inherit' },
      );
      execFileSync(helm, ['test', 'hub', '--kubeconfig', kubeconfig, '--namespace', 'events'], { stdio: 'inherit' });

      const kc = new KubeConfig();
      kc.loadFromString(k3s.getKubeConfig());
      const ops = await forward(kc, 'events', 'app.kubernetes.io/component=ops', 8081);
      const gw = await forward(kc, 'events', 'app.kubernetes.io/component=gateway', 8080);
      servers.push(ops.server, gw.server);

      const client = createClient({
        url: `ws://127.0.0.1:${gw.port}/ws`,
        getToken: () => testToken({ scopes: 'publish:** subscribe:**' }, { secret: SECRET }),
      });
      try {
        for (let i = 0; i < 20; i++) await client.publish('e2e.item', { i }, { key: `k${i}` });
      } finally {
        await client.close();
      }
      await eventually(
        async () => {
          const o = (await (await fetch(`http://127.0.0.1:${ops.port}/api/overview`)).json()) as {
            backlog: { pending: number };
            partitionHeads: Array<{ head: number }>;
          };
          return o.backlog.pending === 0 && o.partitionHeads.reduce((n, p) => n + p.head, 0) === 20;
        },
        120_000,
        'ops to show every event published',
      );

      const apps = kc.makeApiClient(AppsV1Api);
      const scale = await apps.readNamespacedDeploymentScale({ name: 'hub-outbox-hub-drainer', namespace: 'events' });
      await apps.replaceNamespacedDeploymentScale({
        name: 'hub-outbox-hub-drainer',
        namespace: 'events',
        body: { ...scale, spec: { replicas: 3 } },
      });
      await eventually(
        async () => {
          const o = (await (await fetch(`http://127.0.0.1:${ops.port}/api/overview`)).json()) as {
            leases: { drainers: unknown[] };
            unownedPartitions: number[];
          };
          return o.leases.drainers.length === 3 && o.unownedPartitions.length === 0;
        },
        180_000,
        'three drainers sharing every partition',
      );
    } finally {
      for (const s of servers) s.close();
      await k3s.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
  20 * 60_000,
);
