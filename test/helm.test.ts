/**
 * The Helm chart: `helm lint` and `helm template` (helm built from the Go module
 * proxy by the Makefile) for the defaults and for a values file that turns
 * everything on; assertions on the rendered objects; and every object validated
 * offline against the Kubernetes OpenAPI schemas (kubernetes-models).
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseAllDocuments, parse } from 'yaml';
import * as appsV1 from 'kubernetes-models/apps/v1';
import * as autoscalingV2 from 'kubernetes-models/autoscaling/v2';
import * as networkingV1 from 'kubernetes-models/networking.k8s.io/v1';
import * as policyV1 from 'kubernetes-models/policy/v1';
import * as rbacV1 from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import * as coreV1 from 'kubernetes-models/v1';
import * as monitoringV1 from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';

const HELM = process.env['HELM_BIN'] ?? resolve('.tools/bin/helm');
const CHART = resolve('helm/outbox-hub');
const URL = ['--set', 'mongodb.url=mongodb://mongo:27017/shop?replicaSet=rs0', '--set', 'jwt.secret=0123456789abcdef0123456789abcdef'];

/** The parts of rendered containers, pods and workloads these tests read. */
interface Container {
  args: string[];
  env: Array<{ name: string; value?: string }>;
  securityContext: Record<string, unknown>;
  lifecycle?: { preStop: { sleep: { seconds: number } } };
  startupProbe: { httpGet: { path: string } };
  livenessProbe: { httpGet: { path: string } };
  readinessProbe: { httpGet: { path: string } };
  resources: { requests?: Record<string, string> };
}
interface PodSpec {
  containers: [Container, ...Container[]];
  securityContext: Record<string, unknown>;
  automountServiceAccountToken?: boolean;
  terminationGracePeriodSeconds: number;
  tolerations?: unknown[];
}
interface Spec {
  replicas?: number;
  minReplicas?: number;
  maxReplicas?: number;
  template: { metadata: { annotations: Record<string, string> }; spec: PodSpec };
}

type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; annotations?: Record<string, string> };
  spec: Spec;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
};

function helm(...args: string[]): string {
  return execFileSync(HELM, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
function render(...args: string[]): K8sObject[] {
  return parseAllDocuments(helm('template', 'hub', CHART, '--namespace', 'events', ...args))
    .map((d) => d.toJSON() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}
const byKind = (objs: K8sObject[], kind: string) => objs.filter((o) => o.kind === kind);
const deployment = (objs: K8sObject[], c: string) =>
  objs.find((o) => o.kind === 'Deployment' && o.metadata.name === `hub-outbox-hub-${c}`) as K8sObject;

const MODELS: Record<string, Record<string, unknown>> = {
  'apps/v1': appsV1,
  v1: coreV1,
  'policy/v1': policyV1,
  'autoscaling/v2': autoscalingV2,
  'networking.k8s.io/v1': networkingV1,
  'rbac.authorization.k8s.io/v1': rbacV1,
  'monitoring.coreos.com/v1': monitoringV1,
};
function validate(o: K8sObject): void {
  const Model = MODELS[o.apiVersion]?.[o.kind] as (new (d: unknown) => { validate(): void }) | undefined;
  if (!Model) throw new Error(`no schema for ${o.apiVersion} ${o.kind}`);
  new Model(o).validate();
}

describe('helm chart', () => {
  it('lints with the defaults and with everything on', () => {
    expect(helm('lint', CHART, ...URL)).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    expect(helm('lint', CHART, '-f', `${CHART}/values-all.yaml`)).toMatch(/0 chart\(s\) failed/);
  });

  it('refuses to render without a MongoDB URL, and refuses values the schema forbids', () => {
    expect(() => helm('template', 'hub', CHART)).toThrow(
      /mongodb.url \(or mongodb.existingSecret, or mongodb.embedded.enabled\) is required/,
    );
    expect(() => helm('template', 'hub', CHART, ...URL, '--set', 'partitions=0')).toThrow(/partitions/);
    expect(() => helm('template', 'hub', CHART, ...URL, '--set', 'gateway.replicaz=2')).toThrow(/replicaz/);
    expect(() => helm('template', 'hub', CHART, ...URL, '--set', 'jwt.secret=short')).toThrow(/secret/);
  });

  it('renders hardened deployments for the three binaries with probes, shutdown settings and restart checksums', () => {
    const objs = render(...URL);
    for (const o of objs) validate(o);
    expect(
      byKind(objs, 'Deployment')
        .map((d) => d.metadata.name)
        .sort(),
    ).toEqual(['hub-outbox-hub-drainer', 'hub-outbox-hub-gateway', 'hub-outbox-hub-ops']);
    for (const c of ['drainer', 'gateway', 'ops']) {
      const d = deployment(objs, c);
      const pod = d.spec.template.spec;
      const container = pod.containers[0];
      expect(container.args).toEqual([`dist/cmd/${c}/main.js`]);
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
      expect(container.securityContext).toMatchObject({
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
      });
      for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe'] as const)
        expect(container[probe].httpGet.path).toMatch(/^\/(healthz|readyz)$/);
      // A preStop sleep takes a pod out of its Service first; the drainer has none, and a sleep would hold its leases.
      if (c === 'drainer') expect(container.lifecycle).toBeUndefined();
      else expect(container.lifecycle?.preStop.sleep.seconds).toBeGreaterThan(0);
      // The binary's own stop bound stays inside the pod's grace period.
      // V8's old space is held to half the memory limit (Node would size its heap to the whole limit).
      const heap = { drainer: 128, gateway: 256, ops: 128 }[c as 'drainer' | 'gateway' | 'ops'];
      expect(container.env.find((e) => e.name === 'NODE_OPTIONS')?.value).toBe(`--max-old-space-size=${heap}`);
      const stop = container.env.find((e) => e.name === 'STOP_TIMEOUT')?.value ?? '';
      expect(Number.parseInt(stop, 10)).toBeLessThan(pod.terminationGracePeriodSeconds);
      expect(d.spec.template.metadata.annotations['checksum/config']).toMatch(/^[0-9a-f]{64}$/);
      expect(container.resources.requests).toBeDefined();
    }
    expect(deployment(objs, 'drainer').spec.replicas).toBe(2);
    expect(
      byKind(objs, 'Service')
        .map((s) => s.metadata.name)
        .sort(),
    ).toEqual(['hub-outbox-hub-gateway', 'hub-outbox-hub-ops']);
    expect(byKind(objs, 'PodDisruptionBudget')).toHaveLength(2);
    for (const kind of ['HorizontalPodAutoscaler', 'ServiceMonitor', 'PodMonitor', 'NetworkPolicy', 'StatefulSet', 'Role', 'RoleBinding'])
      expect(byKind(objs, kind)).toHaveLength(0);
    expect(deployment(objs, 'drainer').spec.template.spec.automountServiceAccountToken).toBe(false);
    const secret = byKind(objs, 'Secret')[0] as K8sObject;
    expect(secret.stringData).toMatchObject({
      MONGO_URL: 'mongodb://mongo:27017/shop?replicaSet=rs0',
      JWT_SECRET: '0123456789abcdef0123456789abcdef',
    });
  });

  it('restarts pods when configuration changes', () => {
    const a = deployment(render(...URL), 'gateway').spec.template.metadata.annotations;
    const b = deployment(render(...URL, '--set', 'logLevel=debug'), 'gateway').spec.template.metadata.annotations;
    const c = deployment(render(...URL, '--set', 'jwt.secret=fedcba9876543210fedcba9876543210'), 'gateway').spec.template.metadata
      .annotations;
    expect(b['checksum/config']).not.toBe(a['checksum/config']);
    expect(c['checksum/secret']).not.toBe(a['checksum/secret']);
  });

  it('turns every option on: HPA, monitors, network policies, embedded MongoDB, dashboards and rules', () => {
    const objs = render('-f', `${CHART}/values-all.yaml`);
    for (const o of objs) validate(o);
    expect(deployment(objs, 'gateway').spec.replicas).toBeUndefined();
    expect(deployment(objs, 'drainer').spec.replicas).toBe(3);
    expect(byKind(objs, 'HorizontalPodAutoscaler')[0]?.spec).toMatchObject({ minReplicas: 2, maxReplicas: 6 });
    expect(byKind(objs, 'ServiceMonitor')).toHaveLength(2);
    expect(byKind(objs, 'PodMonitor')).toHaveLength(1);
    // Every scrape endpoint labels its target `binary` from the pod's component label (the alert
    // rules' `up{binary=...}`), and keeps the `binary` label the binaries export themselves.
    type Monitor = { spec: { endpoints?: unknown[]; podMetricsEndpoints?: unknown[] } };
    const scrapes = [...byKind(objs, 'ServiceMonitor'), ...byKind(objs, 'PodMonitor')].flatMap((m) => {
      const spec = (m as unknown as Monitor).spec;
      return [...(spec.endpoints ?? []), ...(spec.podMetricsEndpoints ?? [])];
    });
    expect(scrapes).toHaveLength(4);
    for (const e of scrapes)
      expect(e).toMatchObject({
        honorLabels: true,
        relabelings: [{ sourceLabels: ['__meta_kubernetes_pod_label_app_kubernetes_io_component'], targetLabel: 'binary' }],
      });
    for (const c of ['drainer', 'gateway', 'ops']) {
      const meta = deployment(objs, c).spec.template.metadata as { labels?: Record<string, string> };
      expect(meta.labels?.['app.kubernetes.io/component']).toBe(c);
    }
    expect(byKind(objs, 'NetworkPolicy')).toHaveLength(2);
    expect(byKind(objs, 'PodDisruptionBudget')).toHaveLength(3);
    // Kubernetes leases: a Role limited to leases, bound to the chart's service account, whose token is mounted.
    expect(byKind(objs, 'Role')[0]?.['rules' as never]).toEqual([
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'create', 'update', 'delete'] },
    ]);
    expect(byKind(objs, 'RoleBinding')).toHaveLength(1);
    const drainerPod = deployment(objs, 'drainer').spec.template.spec;
    expect(drainerPod.automountServiceAccountToken).toBe(true);
    expect(drainerPod.containers[0].env).toEqual(
      expect.arrayContaining([
        { name: 'LEASE_BACKEND', value: 'kubernetes' },
        { name: 'LEASE_PREFIX', value: 'hub-outbox-hub' },
      ]),
    );
    expect(byKind(objs, 'StatefulSet')[0]?.spec.template.spec.containers[0].args).toEqual(['--replSet', 'rs0', '--bind_ip_all']);
    const secret = byKind(objs, 'Secret')[0] as K8sObject;
    expect(secret.stringData?.['MONGO_URL']).toBe('mongodb://hub-outbox-hub-mongodb-0.hub-outbox-hub-mongodb:27017/?replicaSet=rs0');
    expect(secret.stringData).toMatchObject({
      OPS_ADMIN_TOKEN: 'admin-token-0123456789',
      JWT_PUBLIC_KEY: expect.stringContaining('BEGIN PUBLIC KEY') as unknown,
    });
    const config = byKind(objs, 'ConfigMap').find((c) => c.metadata.name === 'hub-outbox-hub-config') as K8sObject;
    expect(config.data).toMatchObject({
      OUTBOX_PARTITIONS: '32',
      JWT_ALGORITHMS: 'ES256',
      ALLOWED_ORIGINS: 'https://app.example.com',
      JWT_ISSUER: 'https://issuer.example.com',
    });
    const dash = byKind(objs, 'ConfigMap').find((c) => c.metadata.name.endsWith('-dashboard')) as K8sObject;
    expect(JSON.parse(dash.data?.['outbox-hub-dashboard.json'] ?? '')).toEqual(
      JSON.parse(readFileSync('deploy/grafana/outbox-hub-dashboard.json', 'utf8')),
    );
    const rules = byKind(objs, 'ConfigMap').find((c) => c.metadata.name.endsWith('-alerts')) as K8sObject;
    const unowned = (
      parse(rules.data?.['outbox-hub-alerts.yaml'] ?? '') as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> }
    ).groups[0]?.rules.find((r) => r.alert === 'OutboxPartitionsUnowned');
    expect(unowned?.expr).toBe('sum(outbox_partitions_owned) < 32');
    expect(deployment(objs, 'ops').spec.template.spec.tolerations).toEqual([
      { key: 'dedicated', operator: 'Equal', value: 'events', effect: 'NoSchedule' },
    ]);
  });

  it("keeps the chart's copies of the dashboard and alert rules identical to deploy/", () => {
    expect(readFileSync(`${CHART}/files/outbox-hub-dashboard.json`, 'utf8')).toBe(
      readFileSync('deploy/grafana/outbox-hub-dashboard.json', 'utf8'),
    );
    expect(readFileSync(`${CHART}/files/alerts.yaml`, 'utf8')).toBe(readFileSync('deploy/prometheus/alerts.yaml', 'utf8'));
  });

  it('prints the ops port-forward command in NOTES', () => {
    // helm renders NOTES.txt only on install, which needs a cluster: render a copy through tpl instead.
    const dir = mkdtempSync(join(tmpdir(), 'chart-'));
    try {
      cpSync(CHART, join(dir, 'outbox-hub'), { recursive: true });
      cpSync(`${CHART}/templates/NOTES.txt`, join(dir, 'outbox-hub', 'notes.txt'));
      writeFileSync(
        join(dir, 'outbox-hub', 'templates', 'zz-notes.yaml'),
        'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: notes }\ndata:\n  notes: {{ tpl (.Files.Get "notes.txt") . | quote }}\n',
      );
      const out = helm(
        'template',
        'hub',
        join(dir, 'outbox-hub'),
        '--namespace',
        'events',
        '--show-only',
        'templates/zz-notes.yaml',
        ...URL,
      );
      const notes = (parse(out) as { data: { notes: string } }).data.notes;
      expect(notes).toContain('kubectl port-forward -n events svc/hub-outbox-hub-ops 8081:8081');
      expect(notes).toContain('Requeue and replay are disabled');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
