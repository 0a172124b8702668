/**
 * The alert rules under promtool (Debian's prometheus package, `make prometheus`):
 * `promtool check rules` on deploy/prometheus/alerts.yaml and on the rules the
 * chart renders, and `promtool test rules` on deploy/prometheus/alerts.test.yaml,
 * whose cases cover every rule. promtool missing fails these tests; it never
 * skips them.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';

const PROMTOOL = process.env['PROMTOOL'] ?? '/usr/bin/promtool';
const HELM = process.env['HELM_BIN'] ?? resolve('.tools/bin/helm');
const RULES = resolve('deploy/prometheus/alerts.yaml');
const TESTS = resolve('deploy/prometheus/alerts.test.yaml');

interface Rule {
  alert: string;
  expr: string;
}
interface AlertTest {
  alertname: string;
  exp_alerts?: unknown[];
}

function promtool(args: string[], cwd?: string): { status: number | null; out: string } {
  if (!existsSync(PROMTOOL)) throw new Error(`${PROMTOOL} is missing: run 'make prometheus' (Debian's prometheus package)`);
  const r = spawnSync(PROMTOOL, args, { encoding: 'utf8', ...(cwd === undefined ? {} : { cwd }), timeout: 30_000 });
  if (r.error) throw r.error;
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const rules = (): Rule[] => (parse(readFileSync(RULES, 'utf8')) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap((g) => g.rules);

it('promtool is installed', () => {
  expect({ promtool: PROMTOOL, installed: existsSync(PROMTOOL) }).toEqual({ promtool: PROMTOOL, installed: true });
});

it('promtool check rules accepts the rule file', () => {
  const r = promtool(['check', 'rules', RULES]);
  expect({ status: r.status, out: r.out }).toEqual({ status: 0, out: expect.stringContaining('SUCCESS') as unknown });
});

it('promtool test rules passes every case, and the cases cover every rule firing and not firing', () => {
  const r = promtool(['test', 'rules', TESTS]);
  expect({ status: r.status, out: r.out }).toEqual({ status: 0, out: expect.stringContaining('SUCCESS') as unknown });
  const tests = (parse(readFileSync(TESTS, 'utf8')) as { tests: Array<{ alert_rule_test?: AlertTest[] }> }).tests.flatMap(
    (t) => t.alert_rule_test ?? [],
  );
  for (const { alert } of rules()) {
    const cases = tests.filter((t) => t.alertname === alert);
    const firing = cases.some((t) => (t.exp_alerts ?? []).length > 0);
    const quiet = cases.some((t) => (t.exp_alerts ?? []).length === 0);
    expect({ alert, firing, quiet }).toEqual({ alert, firing: true, quiet: true });
  }
});

it("the cases catch a rule that misses a group's first dead letter or drops the partition label", () => {
  // The rules as they were: increase() alone, and max() without `by (partition)`.
  const dir = mkdtempSync(join(tmpdir(), 'alerts-'));
  try {
    const old = readFileSync(RULES, 'utf8')
      .replace(
        /expr: >-\n(\s+)sum by \(group\) \(increase\(gateway_dead_letters_total\[15m\]\)\) > 0\n[\s\S]*?\n(\s+labels:)/,
        'expr: sum(increase(outbox_dead_lettered_total[15m])) > 0 or sum by (group) (increase(gateway_dead_letters_total[15m])) > 0\n$2',
      )
      .replace('max by (partition) (outbox_oldest_pending_age_seconds)', 'max(outbox_oldest_pending_age_seconds)');
    // The two rules under test are back as they were (other rules may use the same constructs).
    expect(old).not.toMatch(/gateway_dead_letters_total unless last_over_time|max by \(partition\) \(outbox_oldest_pending/);
    writeFileSync(join(dir, 'alerts.yaml'), old);
    copyFileSync(TESTS, join(dir, 'alerts.test.yaml'));
    const r = promtool(['test', 'rules', 'alerts.test.yaml'], dir);
    expect(r.status).not.toBe(0);
    expect(r.out).toMatch(/first dead letter of a group \(series appears at 1\),\s+alertname: OutboxDeadLettersGrowing, time: 21m/);
    expect(r.out).toMatch(/new one,\s+alertname: OutboxDeadLettersGrowing, time: 42m/);
    expect(r.out).toMatch(/oldest pending message names its partition,\s+alertname: OutboxOldestPendingTooOld/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it("the chart's rendered rules pass promtool with the chart's partition count", () => {
  const h = spawnSync(
    HELM,
    [
      'template',
      'hub',
      'helm/outbox-hub',
      '--set',
      'prometheusRules.enabled=true',
      '--set',
      'partitions=32',
      '--set',
      'mongodb.url=mongodb://m:27017/?replicaSet=rs0',
      '--set',
      'jwt.secret=0123456789abcdef0123456789abcdef',
      '--show-only',
      'templates/observability-configmaps.yaml',
    ],
    { encoding: 'utf8' },
  );
  expect({ status: h.status, err: h.stderr }).toEqual({ status: 0, err: '' });
  const cm = parse(h.stdout.split(/^---$/m).find((d) => d.includes('outbox-hub-alerts.yaml')) ?? '') as { data: Record<string, string> };
  const rendered = cm.data['outbox-hub-alerts.yaml'] ?? '';
  expect(rendered).toContain('sum(outbox_partitions_owned) < 32');
  expect(rendered).toContain('of 32 partitions are owned');
  const dir = mkdtempSync(join(tmpdir(), 'chart-alerts-'));
  try {
    writeFileSync(join(dir, 'alerts.yaml'), rendered);
    const r = promtool(['check', 'rules', join(dir, 'alerts.yaml')]);
    expect({ status: r.status, out: r.out }).toEqual({
      status: 0,
      out: expect.stringContaining(`SUCCESS: ${rules().length} rules found`) as unknown,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
