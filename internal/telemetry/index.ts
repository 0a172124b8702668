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
  /**
   * What `/readyz` (dependencies reachable, work can be taken) and `/healthz`
   * (no loop wedged) answer, with the reasons when not.
   */
  health: HealthReport;
  /** Extra routes, e.g. a debug endpoint; return false to fall through to 404. */
  extra?: (req: IncomingMessage, res: ServerResponse) => boolean;
}

/** Readiness and liveness as a process reports them. */
export interface HealthReport {
  ready(): { ok: boolean; reasons: string[] };
  healthy(): { ok: boolean; reasons: string[] };
}

/** The answer to `/healthz` or `/readyz`: 200 or 503, a word, then one line per reason. */
export function healthAnswer(path: '/healthz' | '/readyz', health: HealthReport): { status: number; body: string } {
  const { ok, reasons } = path === '/healthz' ? health.healthy() : health.ready();
  const word = path === '/healthz' ? (ok ? 'ok' : 'unhealthy') : ok ? 'ready' : 'not ready';
  return { status: ok ? 200 : 503, body: [word, ...reasons].join('\n') + '\n' };
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
      const answer = healthAnswer(path, options.health);
      res.writeHead(answer.status, { 'content-type': 'text/plain' }).end(answer.body);
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
