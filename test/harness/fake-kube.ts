/**
 * An in-process stand-in for the Kubernetes API's coordination.k8s.io/v1 Lease
 * endpoints, over real HTTP: create (409 when it exists), get, list by label,
 * replace with resourceVersion compare-and-swap (409 when stale), delete.
 * Used because no kube-apiserver can run on this machine; it implements only
 * the semantics the Lease adapter relies on.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

interface Stored {
  metadata: { name: string; namespace: string; resourceVersion: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

/** A running fake API server. */
export interface FakeKube {
  readonly kubeConfig: KubeConfig;
  readonly requests: number;
  close(): Promise<void>;
}

export async function startFakeKube(): Promise<FakeKube> {
  const leases = new Map<string, Stored>();
  let version = 1;
  let requests = 0;
  const status = (code: number, reason: string) => ({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message: reason });
  const server: Server = createServer((req, res) => {
    requests++;
    const url = new URL(req.url ?? '/', 'http://x');
    const m = /^\/apis\/coordination\.k8s\.io\/v1\/namespaces\/([^/]+)\/leases(?:\/([^/]+))?$/.exec(url.pathname);
    const send = (code: number, body: unknown): void =>
      void res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (!m) return send(404, status(404, 'NotFound'));
    const [, ns, name] = m;
    let raw = '';
    req.on('data', (c) => (raw += String(c)));
    req.on('end', () => {
      const key = `${ns}/${name ?? ''}`;
      const body = raw ? (JSON.parse(raw) as Stored) : undefined;
      if (!name && req.method === 'GET') {
        const [k, v] = (url.searchParams.get('labelSelector') ?? '').split('=');
        const items = [...leases.values()].filter((l) => l.metadata.namespace === ns && (!k || l.metadata.labels?.[k] === v));
        return send(200, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'LeaseList',
          metadata: { resourceVersion: String(version) },
          items,
        });
      }
      // Like the API server: MicroTime fields must carry exactly six fractional digits.
      const spec = (body?.['spec'] ?? {}) as Record<string, unknown>;
      for (const f of ['renewTime', 'acquireTime']) {
        if (spec[f] !== undefined && !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(String(spec[f])))
          return send(400, status(400, `BadRequest: spec.${f} is not a MicroTime`));
      }
      if (!name && req.method === 'POST' && body) {
        const k = `${ns}/${body.metadata.name}`;
        if (leases.has(k)) return send(409, status(409, 'AlreadyExists'));
        const stored = { ...body, metadata: { ...body.metadata, namespace: ns as string, resourceVersion: String(++version) } };
        leases.set(k, stored);
        return send(201, stored);
      }
      const current = leases.get(key);
      if (req.method === 'GET') return current ? send(200, current) : send(404, status(404, 'NotFound'));
      if (req.method === 'DELETE') {
        if (!current) return send(404, status(404, 'NotFound'));
        leases.delete(key);
        return send(200, { kind: 'Status', apiVersion: 'v1', status: 'Success' });
      }
      if (req.method === 'PUT' && body) {
        if (!current) return send(404, status(404, 'NotFound'));
        if (body.metadata.resourceVersion !== current.metadata.resourceVersion) return send(409, status(409, 'Conflict'));
        const stored = { ...body, metadata: { ...body.metadata, namespace: ns as string, resourceVersion: String(++version) } };
        leases.set(key, stored);
        return send(200, stored);
      }
      return send(405, status(405, 'MethodNotAllowed'));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'fake', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: 'tester', token: 'test-token' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'tester', namespace: 'events' }],
    currentContext: 'fake',
  });
  return {
    kubeConfig,
    get requests() {
      return requests;
    },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
