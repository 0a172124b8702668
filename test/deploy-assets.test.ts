/**
 * The Grafana dashboard and the alert rules refer only to metrics the binaries
 * really export (read from their registries, not from a list kept by hand).
 */
import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { createDrainerMetrics } from '../internal/drainer/index.js';
import { createGatewayMetrics } from '../internal/gateway/index.js';
import { Health } from '../internal/health/index.js';
import { createLogger } from '../internal/log/index.js';
import { OpsMetrics } from '../internal/ops/index.js';
import { createRegistry } from '../internal/telemetry/index.js';

/** Series Prometheus writes itself for every target (not exported by a binary). */
const SCRAPE_SERIES = new Set(['up']);

async function exported(): Promise<Set<string>> {
  const names = new Set<string>();
  const drainer = createRegistry('drainer');
  createDrainerMetrics(drainer);
  const gateway = createRegistry('gateway');
  createGatewayMetrics(gateway);
  // Every binary's Health registers hub_ready, hub_healthy and hub_db_errors_total.
  for (const r of [drainer, gateway]) new Health({ log: createLogger({ level: 'error' }), registry: r });
  const ops = createRegistry('ops');
  new OpsMetrics(ops);
  for (const r of [drainer, gateway, ops]) for (const m of await r.getMetricsAsJSON()) names.add(m.name);
  // ops registers its request counter when its app starts; its name is fixed here.
  names.add('ops_http_requests_total');
  for (const s of SCRAPE_SERIES) names.add(s);
  return names;
}

function metricNames(expr: string): string[] {
  const words = expr.match(/[a-z_][a-z0-9_]*(?=\s*[{[)\s<>=]|$)/g) ?? [];
  return words
    .filter((w) => /^(outbox|gateway|ops|process|hub)_/.test(w) || SCRAPE_SERIES.has(w))
    .map((w) => w.replace(/_(bucket|sum|count)$/, ''));
}

it('dashboard and alert rules use only exported metrics', async () => {
  const names = await exported();
  const dash = JSON.parse(readFileSync('deploy/grafana/outbox-hub-dashboard.json', 'utf8')) as {
    panels: Array<{ targets?: Array<{ expr: string }> }>;
  };
  const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  expect(exprs.length).toBeGreaterThan(15);
  const rules = parse(readFileSync('deploy/prometheus/alerts.yaml', 'utf8')) as {
    groups: Array<{ rules: Array<{ alert: string; expr: string }> }>;
  };
  const alerts = rules.groups.flatMap((g) => g.rules);
  expect(alerts.map((a) => a.alert)).toEqual(
    expect.arrayContaining([
      'OutboxConsumerLagHigh',
      'OutboxOldestPendingTooOld',
      'OutboxPartitionsUnowned',
      'OutboxDeadLettersGrowing',
      'OutboxHubTargetDown',
      'OutboxHubComponentAbsent',
      'OutboxHubNotReady',
      'OutboxHubDatabaseErrors',
    ]),
  );
  for (const expr of [...exprs, ...alerts.map((a) => a.expr)]) {
    const used = metricNames(expr);
    expect({ expr, used: used.length > 0 }).toEqual({ expr, used: true });
    for (const m of used) expect({ expr, metric: m, exported: names.has(m) }).toEqual({ expr, metric: m, exported: true });
  }
});

it('docker compose runs every binary from the one image, hardened, after MongoDB is a healthy replica set', () => {
  const compose = parse(readFileSync('deploy/compose/docker-compose.yaml', 'utf8'), { merge: true }) as {
    services: Record<
      string,
      {
        command?: string[];
        read_only?: boolean;
        cap_drop?: string[];
        depends_on?: Record<string, { condition: string }>;
        environment?: Record<string, string>;
        image?: string;
      }
    >;
  };
  expect(Object.keys(compose.services).sort()).toEqual(['drainer', 'gateway', 'mongo', 'ops']);
  for (const name of ['drainer', 'gateway', 'ops']) {
    const s = compose.services[name]!;
    expect(s.command).toEqual([`dist/cmd/${name}/main.js`]);
    expect(existsSync(s.command![0]!)).toBe(true);
    expect(s.image).toBe('outbox-hub:local');
    expect(s.read_only).toBe(true);
    expect(s.cap_drop).toEqual(['ALL']);
    expect(s.depends_on?.['mongo']?.condition).toBe('service_healthy');
    expect(s.environment?.['MONGO_URL']).toMatch(/replicaSet=rs0/);
  }
  const dockerfile = readFileSync('Dockerfile', 'utf8');
  expect(dockerfile).toMatch(/npm prune --omit=dev/);
  expect(dockerfile).toMatch(/^USER 10001:10001$/m);
  expect(dockerfile).toMatch(/ENTRYPOINT \["\/usr\/bin\/tini", "--", "node"\]/);
});
