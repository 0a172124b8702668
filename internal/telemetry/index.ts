/**
 * Metrics registry and the health/metrics HTTP endpoint every binary serves.
 *
 * Invariants: each binary owns one prom-client `Registry` (never the default
 * one); the server listens only where configured and `close()` is idempotent
 * and destroys its keep-alive sockets.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { closerFor } from '../lifecycle/index.js';

export { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** A fresh registry with process metrics and a `binary` default label. */
export function createRegistry(binary: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ binary });
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** Options for {@link startTelemetryServer}. */
export interface TelemetryServerOptions {
  host: string;
  port: number;
  registry: Registry;
  /** Liveness: the event loop answers and no loop is wedged (reasons listed when not). */
  healthy?: () => boolean | { ok: boolean; reasons: string[] };
  /** Readiness: dependencies reachable and work can be taken (reasons listed when not). */
  ready: () => boolean | { ok: boolean; reasons: string[] };
  /** Extra routes, e.g. a debug endpoint; return false to fall through to 404. */
  extra?: (req: IncomingMessage, res: ServerResponse) => boolean;
}

/** A running telemetry server. */
export interface TelemetryServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Serves `/metrics`, `/healthz` and `/readyz`. */
export async function startTelemetryServer(options: TelemetryServerOptions): Promise<TelemetryServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      options.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': options.registry.contentType }).end(body),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
      return;
    }
    if (path === '/healthz' || path === '/readyz') {
      const verdict = (path === '/healthz' ? options.healthy?.() : options.ready()) ?? true;
      const { ok, reasons } = typeof verdict === 'boolean' ? { ok: verdict, reasons: [] } : verdict;
      const word = path === '/healthz' ? (ok ? 'ok' : 'unhealthy') : ok ? 'ready' : 'not ready';
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end([word, ...reasons].join('\n') + '\n');
      return;
    }
    if (options.extra?.(req, res)) return;
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  const close = closerFor(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return { port, close };
}
