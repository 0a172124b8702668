/**
 * The Grafana dashboard and the alert rules against a real Prometheus (Debian's
 * prometheus package, `make prometheus`) scraping a drainer, a gateway and ops
 * run as processes on the test database: every expression parses, every
 * dashboard expression returns data (the few that legitimately cannot in a short
 * run are listed, with why), targets carry the `binary` label the rules expect,
 * and a group's first dead letter fires OutboxDeadLettersGrowing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parse } from 'yaml';
import type { ServerFrame } from '../internal/gateway/index.js';
import { useTestDb } from './harness/db.js';
import { TEST_SECRET, rootToken } from './harness/hub.js';
import { eventually, startBinary, type BinaryProcess } from './harness/process.js';
import { freePort } from './harness/server.js';
import { TestClient } from './harness/ws-client.js';

const PROMETHEUS = process.env['PROMETHEUS'] ?? '/usr/bin/prometheus';
const DASHBOARD = resolve('deploy/grafana/outbox-hub-dashboard.json');
const RULES = resolve('deploy/prometheus/alerts.yaml');

/**
 * Dashboard expressions allowed to return no series in this short run, each with why. Only one:
 * labelled counters are exported at 0 for their known values, histograms always export their
 * buckets, the run makes a group's events dead-letter, and the drainer runs retention rounds.
 */
const NO_DATA_IN_SHORT_RUN: ReadonlyMap<string, string> = new Map<string, string>([
  [
    'sum by (group) (increase(outbox_retention_forced_total[10m]))',
    'the series of a group appears with the first trim a hard cap forces past it, which this run does not cause (the promtool case of OutboxRetentionForcedTrim covers it)',
  ],
]);

/** Values for Grafana's built-in variables (what a 1 s scrape interval would not give: a real dashboard range). */
const GRAFANA_BUILTINS: Readonly<Record<string, string>> = {
  __rate_interval: '1m',
  __interval: '15s',
  __interval_ms: '15000',
  __range: '5m',
  __range_s: '300',
  __range_ms: '300000',
};

interface Dashboard {
  panels: Array<{ title?: string; targets?: Array<{ expr?: string }> }>;
  templating?: { list?: Array<{ name: string; type?: string; current?: { value?: string | string[] } }> };
}

interface QueryAnswer {
  status: 'success' | 'error';
  error?: string;
  data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
}

/** `expr` with Grafana's variables replaced: built-ins by fixed intervals, dashboard variables by their current value (`.*` for All). */
function substitute(expr: string, dash: Dashboard): string {
  const vars = new Map<string, string>(Object.entries(GRAFANA_BUILTINS));
  for (const v of dash.templating?.list ?? []) {
    const current = v.current?.value;
    const all = current === undefined || current === '$__all' || Array.isArray(current);
    vars.set(v.name, all ? '.*' : current);
  }
  return expr.replace(/\$\{(\w+)(?::[\w]+)?\}|\[\[(\w+)\]\]|\$(\w+)/g, (whole, a?: string, b?: string, c?: string) => {
    const name = a ?? b ?? c ?? '';
    const value = vars.get(name);
    if (value === undefined) throw new Error(`dashboard expression ${expr} uses ${whole}, which this test cannot substitute`);
    return value;
  });
}

const t = useTestDb('prom');
const binaries: BinaryProcess[] = [];
const clients: TestClient[] = [];
const state: { prometheus?: ChildProcess; exited?: Promise<unknown>; dir?: string } = {};

afterAll(async () => {
  for (const c of clients) c.ws.terminate();
  for (const p of binaries) p.kill('SIGKILL');
  state.prometheus?.kill('SIGKILL');
  await Promise.all([...binaries.map((p) => p.exited), state.exited]);
  if (state.dir) rmSync(state.dir, { recursive: true, force: true });
});

/** Starts Prometheus on `port` with `config`, small: one core, a soft 256 MiB heap limit, its output kept for errors. */
function startPrometheus(dir: string, port: number): { logs: string[] } {
  if (!existsSync(PROMETHEUS)) throw new Error(`${PROMETHEUS} is missing: run 'make prometheus' (Debian's prometheus package)`);
  const child = spawn(
    PROMETHEUS,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--storage.tsdb.retention.time=1h',
      '--query.max-concurrency=2',
      '--web.max-connections=32',
      '--log.level=warn',
    ],
    { env: { ...process.env, GOMAXPROCS: '1', GOMEMLIMIT: '256MiB', GOGC: '50' }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  state.prometheus = child;
  state.exited = new Promise((r) => child.once('exit', r));
  const logs: string[] = [];
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (l) => void (logs.push(l) > 50 && logs.shift()));
  return { logs };
}

it('every dashboard and alert expression runs on a real Prometheus scraping the binaries; dashboard panels have data', async () => {
  const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
  const rules = (parse(readFileSync(RULES, 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> }).groups.flatMap(
    (g) => g.rules,
  );
  const [gwPort, opsPort, promPort] = [await freePort(), await freePort(), await freePort()];
  const common = { MONGO_URL: t.url, MONGO_DB: t.name, OUTBOX_PARTITIONS: '4', METRICS_HOST: '127.0.0.1', METRICS_PORT: '0' };
  const start = (name: string, env: Record<string, string>): BinaryProcess => {
    const p = startBinary(name, env);
    binaries.push(p);
    return p;
  };
  const drainer = start('drainer', {
    ...common,
    POLL_MAX: '30ms',
    STATS_INTERVAL: '500ms',
    LEASE_TTL: '2s',
    LEASE_RENEW_INTERVAL: '300ms',
    // Rounds run (and export their figures) though nothing is old enough to trim.
    RETENTION: JSON.stringify({ topics: [{ match: 'work.**', maxEvents: 1000 }] }),
    RETENTION_INTERVAL: '500ms',
  });
  const gateway = start('gateway', {
    ...common,
    GATEWAY_HOST: '127.0.0.1',
    GATEWAY_PORT: String(gwPort),
    JWT_SECRET: TEST_SECRET,
    TAIL_POLL_MAX: '30ms',
    GROUP_LEASE_TTL: '2s',
    GROUP_LEASE_RENEW_INTERVAL: '200ms',
    CURSOR_FLUSH_INTERVAL: '100ms',
    // A nacked group event goes to the dead letters at once.
    MAX_DELIVERIES: '1',
  });
  const ops = start('ops', {
    MONGO_URL: t.url,
    MONGO_DB: t.name,
    OUTBOX_PARTITIONS: '4',
    OPS_HOST: '127.0.0.1',
    OPS_PORT: String(opsPort),
    OPS_SAMPLE_INTERVAL: '500ms',
  });
  const telemetry = (l: { msg?: string }): boolean => l.msg === 'telemetry listening';
  const [drainerPort, gatewayMetricsPort] = (await Promise.all([drainer.waitForLog(telemetry), gateway.waitForLog(telemetry)])).map((l) =>
    Number(l['port']),
  );
  await ops.waitForLog((l) => l.msg === 'ops listening');

  // The scrape config the rules expect: `binary` on every target, the binaries' own `binary` kept.
  const dir = mkdtempSync(join(tmpdir(), 'prometheus-'));
  state.dir = dir;
  const target = (port: number | undefined, binary: string) => ({ targets: [`127.0.0.1:${String(port)}`], labels: { binary } });
  writeFileSync(
    join(dir, 'prometheus.yml'),
    JSON.stringify({
      global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
      rule_files: [RULES],
      scrape_configs: [
        {
          job_name: 'outbox-hub',
          honor_labels: true,
          static_configs: [target(drainerPort, 'drainer'), target(gatewayMetricsPort, 'gateway'), target(opsPort, 'ops')],
        },
      ],
    }),
  );
  const prom = startPrometheus(dir, promPort);
  const query = async (q: string): Promise<QueryAnswer> => {
    const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`);
    return (await res.json()) as QueryAnswer;
  };
  const series = async (q: string): Promise<Array<{ metric: Record<string, string>; value: number }>> => {
    const a = await query(q);
    if (a.status !== 'success') throw new Error(`${q}: ${a.error ?? 'failed'}`);
    return (a.data?.result ?? []).map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  };
  const until = async (q: string, what: string, timeoutMs = 20_000): Promise<void> => {
    await eventually(async () => (await series(q)).length > 0, timeoutMs, what).catch((err: unknown) => {
      throw new Error(`${String(err)}; prometheus: ${prom.logs.slice(-5).join(' | ')}`);
    });
  };
  await until('count(up{binary=~"drainer|gateway|ops"} == 1) == 3', 'Prometheus to scrape the three binaries');
  await gateway.waitForLog((l) => l.msg === 'gateway listening');

  // A group member that nacks everything: with MAX_DELIVERIES=1 each event is a dead letter.
  const nacker = await TestClient.authed(gwPort, await rootToken());
  clients.push(nacker);
  nacker.ws.on('message', (data) => {
    const f = JSON.parse((data as Buffer).toString()) as ServerFrame;
    if (f.op === 'EVENT') nacker.ws.send(JSON.stringify({ op: 'NACK', id: `n-${f.event.id}`, sub: 'g', eventId: f.event.id }));
  });
  expect((await nacker.request({ op: 'SUBSCRIBE', sub: 'g', topic: 'work.*', group: 'billing' })).op).toBe('OK');
  // A live subscriber, so publish-to-deliver has observations.
  const live = await TestClient.authed(gwPort, await rootToken());
  clients.push(live);
  expect((await live.request({ op: 'SUBSCRIBE', sub: 'l', topic: 'work.*' })).op).toBe('OK');
  // The group's dead-letter counter is scraped at 0 before its first dead letter...
  await until('gateway_dead_letters_total{group="billing"} == 0', "the group's dead-letter counter at 0");

  const pub = await TestClient.authed(gwPort, await rootToken());
  clients.push(pub);
  for (let i = 0; i < 5; i++) expect((await pub.request({ op: 'PUBLISH', topic: 'work.item', key: `k${i}`, payload: i })).op).toBe('OK');
  await live.nEvents(5, 'l');
  // ...so its first dead letter is an increase, and the alert fires for the group.
  await until('gateway_dead_letters_total{group="billing"} > 0', 'the dead letters to be scraped');
  await until('outbox_published_total > 0', 'the published events to be scraped');
  await eventually(
    async () => {
      const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/alerts`);
      const body = (await res.json()) as { data: { alerts: Array<{ labels: Record<string, string>; state: string }> } };
      return body.data.alerts.some(
        (a) => a.labels['alertname'] === 'OutboxDeadLettersGrowing' && a.labels['group'] === 'billing' && a.state === 'firing',
      );
    },
    15_000,
    'OutboxDeadLettersGrowing to fire for group billing',
  );
  // Two more scrapes, so every rate() window holds samples after the activity.
  await new Promise((r) => setTimeout(r, 2_500));

  // Every dashboard expression: parses, and returns data.
  const exprs = dash.panels.flatMap((p) => (p.targets ?? []).flatMap((tg) => (tg.expr ? [{ panel: p.title ?? '', expr: tg.expr }] : [])));
  expect(exprs.length).toBeGreaterThan(15);
  for (const { panel, expr } of exprs) {
    const a = await query(substitute(expr, dash));
    expect({ panel, expr, status: a.status, error: a.error }).toEqual({ panel, expr, status: 'success', error: undefined });
    const count = a.data?.result.length ?? 0;
    const allowed = NO_DATA_IN_SHORT_RUN.has(expr);
    expect({ panel, expr, hasData: count > 0 || allowed }).toEqual({ panel, expr, hasData: true });
  }
  // A stale entry in the allowed list would hide a panel losing its data later.
  for (const expr of NO_DATA_IN_SHORT_RUN.keys()) expect(exprs.map((e) => e.expr)).toContain(expr);

  // Every alert expression parses and runs.
  for (const { alert, expr } of rules) {
    const a = await query(expr);
    expect({ alert, status: a.status, error: a.error }).toEqual({ alert, status: 'success', error: undefined });
  }
  const byAlert = (name: string): string => rules.find((r) => r.alert === name)?.expr ?? `missing rule ${name}`;
  // Every binary is up and labelled; the down and absent rules see nothing to report.
  expect((await series('up')).map((s) => [s.metric['binary'], s.value]).sort()).toEqual([
    ['drainer', 1],
    ['gateway', 1],
    ['ops', 1],
  ]);
  expect(await series(byAlert('OutboxHubTargetDown'))).toEqual([]);
  expect(await series(byAlert('OutboxHubComponentAbsent'))).toEqual([]);
  expect(await series(byAlert('OutboxNoDrainers'))).toEqual([]);
  // The binaries' own `binary` label was kept as it is (honor_labels), never renamed.
  expect(await series('count({exported_binary!=""})')).toEqual([]);
  await eventually(async () => (await series(byAlert('OutboxHubNotReady'))).length === 0, 10_000, 'every binary to be ready');
  // The activity shows where the dashboard looks for it.
  expect((await series('sum(rate(outbox_published_total[1m]))'))[0]?.value).toBeGreaterThan(0);
  expect(await series('sum by (group) (increase(gateway_dead_letters_total[15m])) > 0')).toEqual([
    { metric: { group: 'billing' }, value: expect.any(Number) as unknown },
  ]);
  expect(await series('sum by (group) (gateway_consumer_lag_events)')).toEqual([
    { metric: { group: 'billing' }, value: expect.any(Number) as unknown },
  ]);
  const p50 = (await series('histogram_quantile(0.5, sum by (le) (rate(gateway_publish_to_deliver_seconds_bucket[5m])))'))[0]?.value;
  expect(Number.isFinite(p50)).toBe(true);
}, 90_000);
