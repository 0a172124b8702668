/**
 * The Helm chart installed for real (not a dry run) on a real kube-apiserver
 * (test/harness/kube-server.ts): with the defaults plus a MongoDB URL, and with
 * values-all.yaml after the prometheus-operator CRDs. Assertions read the objects
 * the API server holds (after its validation and defaulting), not rendered text;
 * then `helm upgrade` scales the drainers and `helm uninstall` removes everything.
 *
 * What this server cannot show: there is no controller-manager, scheduler or
 * kubelet, so Deployments stay at 0 ready replicas, no pod ever runs, and
 * `helm test` (which runs a pod) cannot run here; its hook pod is validated by a
 * server-side dry run instead. The K3s test (k3s.e2e.test.ts) covers running pods
 * where a Docker engine exists.
 */
import {
  AppsV1Api,
  AuthorizationV1Api,
  AutoscalingV2Api,
  CoreV1Api,
  CustomObjectsApi,
  NetworkingV1Api,
  PolicyV1Api,
  RbacAuthorizationV1Api,
  loadAllYaml,
  type KubeConfig,
  type KubernetesObject,
  type V1Container,
  type V1Deployment,
  type V1Pod,
  type V1PodSpec,
  type V1Service,
} from '@kubernetes/client-node';
import {
  applyCrds,
  createNamespace,
  describeKube,
  helm,
  kubeConfigFor,
  kubeServer,
  prometheusCrds,
  type KubeEndpoint,
} from './harness/kube.js';

const CHART = 'helm/outbox-hub';
const BASIC = ['--set', 'mongodb.url=mongodb://mongo:27017/shop?replicaSet=rs0', '--set', 'jwt.secret=0123456789abcdef0123456789abcdef'];
const INSTANCE = 'app.kubernetes.io/instance=hub';

/** The fields of ServiceMonitor and PodMonitor objects these tests read. */
interface Monitor {
  metadata: { name: string; labels?: Record<string, string> };
  spec: {
    selector: { matchLabels?: Record<string, string> };
    endpoints?: Array<{ port: string; path: string }>;
    podMetricsEndpoints?: Array<{ port: string; path: string }>;
  };
}

describeKube(
  'helm chart on a real kube-apiserver',
  () => {
    let endpoint: KubeEndpoint;
    let kc: KubeConfig;
    let apps: AppsV1Api;
    let core: CoreV1Api;
    beforeAll(async () => {
      endpoint = await kubeServer();
      kc = kubeConfigFor(endpoint);
      apps = kc.makeApiClient(AppsV1Api);
      core = kc.makeApiClient(CoreV1Api);
    }, 180_000);

    const deployments = async (namespace: string): Promise<Map<string, V1Deployment>> =>
      new Map(
        (await apps.listNamespacedDeployment({ namespace, labelSelector: INSTANCE })).items.map((d) => [
          d.metadata?.labels?.['app.kubernetes.io/component'] as string,
          d,
        ]),
      );
    const podSpec = (d: V1Deployment | undefined): V1PodSpec => d?.spec?.template.spec as V1PodSpec;
    const container = (d: V1Deployment | undefined): V1Container => podSpec(d).containers[0] as V1Container;
    const env = (c: V1Container, name: string): string | undefined => c.env?.find((e) => e.name === name)?.value;
    const matches = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean =>
      Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);

    /** The hardening every pod template of the chart must have, as the server stored it. */
    function expectHardened(pod: V1PodSpec, c: V1Container): void {
      expect(pod.securityContext).toMatchObject({
        runAsNonRoot: true,
        runAsUser: 10001,
        runAsGroup: 10001,
        fsGroup: 10001,
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(c.securityContext).toMatchObject({
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
      });
      expect(c.resources?.requests).toBeDefined();
    }

    describe('defaults plus a MongoDB URL', () => {
      const NS = 'chart-defaults';
      beforeAll(async () => {
        await helm(endpoint, 'install', 'hub', CHART, '--namespace', NS, '--create-namespace', ...BASIC);
      }, 120_000);

      it('holds three hardened Deployments whose probes point at named ports that serve health', async () => {
        const ds = await deployments(NS);
        expect([...ds.keys()].sort()).toEqual(['drainer', 'gateway', 'ops']);
        for (const [component, d] of ds) {
          const pod = podSpec(d);
          const c = container(d);
          expectHardened(pod, c);
          expect(c.args).toEqual([`dist/cmd/${component}/main.js`]);
          // The selector selects the template's own labels (the server refuses it otherwise, but be explicit).
          expect(matches(d.spec?.selector.matchLabels, d.spec?.template.metadata?.labels)).toBe(true);
          const portNames = new Set(c.ports?.map((p) => p.name));
          for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe]) {
            expect(portNames.has(String(probe?.httpGet?.port))).toBe(true);
            // Server defaults filled in: a stored object, not rendered text.
            expect(probe?.timeoutSeconds).toBe(1);
            expect(probe?.httpGet?.scheme).toBe('HTTP');
          }
          expect(c.readinessProbe?.httpGet?.path).toBe('/readyz');
          expect(c.livenessProbe?.httpGet?.path).toBe('/healthz');
          // The binary's own stop bound stays inside the grace period, after the preStop sleep.
          const stopS = Number.parseInt(env(c, 'STOP_TIMEOUT') ?? '', 10);
          expect(stopS + (c.lifecycle?.preStop?.sleep?.seconds ?? 0)).toBeLessThanOrEqual(pod.terminationGracePeriodSeconds ?? 30);
          // MongoDB leases: no API token in the pods.
          expect(pod.automountServiceAccountToken).toBe(false);
          expect(pod.serviceAccountName).toBe('hub-outbox-hub');
          expect(d.spec?.strategy?.type).toBe('RollingUpdate');
          // No controller-manager here: nothing ever becomes ready.
          expect(d.status?.readyReplicas ?? 0).toBe(0);
        }
        expect(ds.get('drainer')?.spec?.replicas).toBe(2);
        expect(ds.get('gateway')?.spec?.replicas).toBe(2);
        expect(ds.get('ops')?.spec?.replicas).toBe(1);
      });

      it('holds Services with allocated cluster IPs that select the pods and target named container ports', async () => {
        const ds = await deployments(NS);
        const services = (await core.listNamespacedService({ namespace: NS, labelSelector: INSTANCE })).items;
        expect(services.map((s) => s.metadata?.name).sort()).toEqual(['hub-outbox-hub-gateway', 'hub-outbox-hub-ops']);
        for (const s of services) {
          expect(s.spec?.clusterIP).toMatch(/^10\.96\.\d+\.\d+$/);
          const d = ds.get(s.metadata?.labels?.['app.kubernetes.io/component'] as string);
          expect(matches(s.spec?.selector, d?.spec?.template.metadata?.labels)).toBe(true);
          const names = new Set(container(d).ports?.map((p) => p.name));
          for (const p of s.spec?.ports ?? []) expect(names.has(String(p.targetPort))).toBe(true);
        }
      });

      it('holds PodDisruptionBudgets for drainer and gateway and nothing optional', async () => {
        const ds = await deployments(NS);
        const pdbs = (await kc.makeApiClient(PolicyV1Api).listNamespacedPodDisruptionBudget({ namespace: NS, labelSelector: INSTANCE }))
          .items;
        expect(pdbs.map((p) => p.metadata?.name).sort()).toEqual(['hub-outbox-hub-drainer', 'hub-outbox-hub-gateway']);
        for (const p of pdbs) {
          expect(p.spec?.minAvailable).toBe(1);
          const d = ds.get(String(p.metadata?.name).replace('hub-outbox-hub-', ''));
          expect(matches(p.spec?.selector?.matchLabels, d?.spec?.template.metadata?.labels)).toBe(true);
        }
        const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
        expect((await rbac.listNamespacedRole({ namespace: NS })).items).toEqual([]);
        expect((await kc.makeApiClient(AutoscalingV2Api).listNamespacedHorizontalPodAutoscaler({ namespace: NS })).items).toEqual([]);
        expect((await kc.makeApiClient(NetworkingV1Api).listNamespacedNetworkPolicy({ namespace: NS })).items).toEqual([]);
        const secret = await core.readNamespacedSecret({ name: 'hub-outbox-hub-secrets', namespace: NS });
        expect(Buffer.from(secret.data?.['MONGO_URL'] ?? '', 'base64').toString()).toBe('mongodb://mongo:27017/shop?replicaSet=rs0');
      });

      it('validates the `helm test` pod on the server (helm test itself cannot run: no scheduler or kubelet here)', async () => {
        const hooks = loadAllYaml(await helm(endpoint, 'get', 'hooks', 'hub', '--namespace', NS)) as KubernetesObject[];
        const pod = hooks.find((h) => h.kind === 'Pod') as V1Pod;
        expect(pod.metadata?.annotations?.['helm.sh/hook']).toBe('test');
        // The controller-manager would have created the namespace's default ServiceAccount, which the pod runs as.
        await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: 'default' } } });
        const stored = await core.createNamespacedPod({ namespace: NS, body: pod, dryRun: 'All' });
        expect(stored.spec?.securityContext?.runAsNonRoot).toBe(true);
        expect(stored.spec?.containers[0]?.securityContext?.readOnlyRootFilesystem).toBe(true);
        expect((await core.listNamespacedPod({ namespace: NS })).items).toEqual([]);
      });

      it('scales the drainers with `helm upgrade` and touches nothing else', async () => {
        const before = await deployments(NS);
        await helm(endpoint, 'upgrade', 'hub', CHART, '--namespace', NS, '--reuse-values', '--set', 'drainer.replicas=5');
        const after = await deployments(NS);
        expect(after.get('drainer')?.spec?.replicas).toBe(5);
        expect(after.get('drainer')?.metadata?.generation).toBe((before.get('drainer')?.metadata?.generation ?? 0) + 1);
        for (const c of ['gateway', 'ops']) expect(after.get(c)?.metadata?.generation).toBe(before.get(c)?.metadata?.generation);
        expect(await helm(endpoint, 'status', 'hub', '--namespace', NS)).toMatch(/REVISION: 2/);
      });

      it('removes everything it created with `helm uninstall`', async () => {
        await helm(endpoint, 'uninstall', 'hub', '--namespace', NS);
        expect((await apps.listNamespacedDeployment({ namespace: NS })).items).toEqual([]);
        const left = [
          ...(await core.listNamespacedService({ namespace: NS, labelSelector: INSTANCE })).items,
          ...(await core.listNamespacedConfigMap({ namespace: NS, labelSelector: INSTANCE })).items,
          ...(await core.listNamespacedSecret({ namespace: NS })).items,
          ...(await core.listNamespacedServiceAccount({ namespace: NS, labelSelector: INSTANCE })).items,
          ...(await kc.makeApiClient(PolicyV1Api).listNamespacedPodDisruptionBudget({ namespace: NS })).items,
        ];
        // Helm's release records are Secrets too: none is left.
        expect(left.map((o) => `${o.kind ?? ''} ${o.metadata?.name ?? ''}`)).toEqual([]);
      });
    });

    describe('values-all.yaml (every option on)', () => {
      const NS = 'chart-all';
      beforeAll(async () => {
        // Without the prometheus-operator CRDs the API server has no ServiceMonitor or PodMonitor kind.
        await createNamespace(kc, 'chart-nocrd');
        await expect(
          helm(endpoint, 'install', 'hub', CHART, '--namespace', 'chart-nocrd', '-f', `${CHART}/values-all.yaml`),
        ).rejects.toThrow(/no matches for kind "(ServiceMonitor|PodMonitor)"/);
        await applyCrds(kc, prometheusCrds());
        await helm(endpoint, 'install', 'hub', CHART, '--namespace', NS, '--create-namespace', '-f', `${CHART}/values-all.yaml`);
      }, 120_000);

      it('holds hardened Deployments and a MongoDB StatefulSet with Kubernetes leases configured', async () => {
        const ds = await deployments(NS);
        for (const d of ds.values()) {
          expectHardened(podSpec(d), container(d));
          expect(podSpec(d).nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
          expect(podSpec(d).imagePullSecrets).toEqual([{ name: 'regcred' }]);
          expect(container(d).image).toBe('registry.example.com/outbox-hub:1.2.3');
          expect(podSpec(d).automountServiceAccountToken).toBe(true);
          expect(env(container(d), 'LEASE_BACKEND')).toBe('kubernetes');
          expect(env(container(d), 'LEASE_PREFIX')).toBe('hub-outbox-hub');
        }
        expect(ds.get('drainer')?.spec?.replicas).toBe(3);
        // The chart leaves the gateway's replicas to the HPA; the server defaults the field to 1 until an HPA controller acts.
        expect(ds.get('gateway')?.spec?.replicas).toBe(1);
        const sts = (await apps.listNamespacedStatefulSet({ namespace: NS, labelSelector: INSTANCE })).items;
        expect(sts).toHaveLength(1);
        expect(sts[0]?.spec?.template.spec?.containers[0]?.args).toEqual(['--replSet', 'rs0', '--bind_ip_all']);
        expect(sts[0]?.spec?.volumeClaimTemplates?.[0]?.spec?.resources?.requests?.['storage']).toBe('1Gi');
      });

      it("binds a Role on leases to the chart's ServiceAccount, and the server's authorizer agrees", async () => {
        const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
        const roles = (await rbac.listNamespacedRole({ namespace: NS })).items;
        expect(roles.map((r) => r.rules)).toEqual([
          [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'create', 'update', 'delete'] }],
        ]);
        const bindings = (await rbac.listNamespacedRoleBinding({ namespace: NS })).items;
        expect(bindings.map((b) => [b.roleRef.name, b.subjects])).toEqual([
          ['hub-outbox-hub-leases', [{ kind: 'ServiceAccount', name: 'hub-outbox-hub', namespace: NS }]],
        ]);
        const sa = await core.readNamespacedServiceAccount({ name: 'hub-outbox-hub', namespace: NS });
        expect(sa.metadata?.annotations).toMatchObject({ 'example.com/role': 'outbox-hub' });
        const authz = kc.makeApiClient(AuthorizationV1Api);
        const can = async (verb: string, resource: string, namespace: string, group = 'coordination.k8s.io') =>
          (
            await authz.createSubjectAccessReview({
              body: {
                spec: {
                  user: `system:serviceaccount:${NS}:hub-outbox-hub`,
                  groups: ['system:serviceaccounts', `system:serviceaccounts:${NS}`, 'system:authenticated'],
                  resourceAttributes: { verb, group, resource, namespace },
                },
              },
            })
          ).status?.allowed;
        for (const verb of ['get', 'list', 'create', 'update', 'delete']) expect(await can(verb, 'leases', NS)).toBe(true);
        expect(await can('watch', 'leases', NS)).toBe(false);
        expect(await can('update', 'leases', 'chart-defaults')).toBe(false);
        expect(await can('get', 'secrets', NS, '')).toBe(false);
      });

      it('holds PDBs, the gateway HPA and NetworkPolicies that select the chart’s pods', async () => {
        const ds = await deployments(NS);
        const pdbs = (await kc.makeApiClient(PolicyV1Api).listNamespacedPodDisruptionBudget({ namespace: NS })).items;
        expect(pdbs.map((p) => p.metadata?.name).sort()).toEqual([
          'hub-outbox-hub-drainer',
          'hub-outbox-hub-gateway',
          'hub-outbox-hub-ops',
        ]);
        const hpas = (await kc.makeApiClient(AutoscalingV2Api).listNamespacedHorizontalPodAutoscaler({ namespace: NS })).items;
        expect(hpas).toHaveLength(1);
        expect(hpas[0]?.spec).toMatchObject({
          minReplicas: 2,
          maxReplicas: 6,
          scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: ds.get('gateway')?.metadata?.name },
          metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } }],
        });
        const policies = new Map(
          (await kc.makeApiClient(NetworkingV1Api).listNamespacedNetworkPolicy({ namespace: NS })).items.map((p) => [p.metadata?.name, p]),
        );
        const gw = policies.get('hub-outbox-hub-gateway');
        expect(matches(gw?.spec?.podSelector?.matchLabels, ds.get('gateway')?.spec?.template.metadata?.labels)).toBe(true);
        expect(gw?.spec?.ingress?.[0]).toEqual({
          ports: [{ port: 8080, protocol: 'TCP' }],
          _from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'apps' } } }],
        });
        // Every container port the pods expose is open in some policy that selects them.
        const internal = policies.get('hub-outbox-hub-internal');
        const open = (p: typeof gw) => new Set(p?.spec?.ingress?.flatMap((r) => r.ports?.map((x) => Number(x.port)) ?? []));
        for (const port of container(ds.get('gateway')).ports ?? []) expect(open(gw).has(port.containerPort)).toBe(true);
        for (const c of ['drainer', 'ops'])
          for (const port of container(ds.get(c)).ports ?? []) expect(open(internal).has(port.containerPort)).toBe(true);
        expect(internal?.spec?.podSelector?.matchExpressions?.map((e) => [e.key, e.values])).toEqual([
          ['app.kubernetes.io/component', ['drainer', 'ops']],
          ['app.kubernetes.io/instance', ['hub']],
        ]);
      });

      it('holds monitors whose endpoints reach a port that serves /metrics', async () => {
        const ds = await deployments(NS);
        const custom = kc.makeApiClient(CustomObjectsApi);
        const list = async (plural: string): Promise<Monitor[]> =>
          (
            (await custom.listNamespacedCustomObject({ group: 'monitoring.coreos.com', version: 'v1', namespace: NS, plural })) as {
              items: Monitor[];
            }
          ).items;
        const services: V1Service[] = (await core.listNamespacedService({ namespace: NS, labelSelector: INSTANCE })).items;
        // The port each binary serves /metrics on, by the env the chart gives it.
        const metricsPort = (c: string): number => {
          const ct = container(ds.get(c));
          return Number(env(ct, c === 'ops' ? 'OPS_PORT' : 'METRICS_PORT'));
        };
        const sms = await list('servicemonitors');
        expect(sms.map((m) => m.metadata.name).sort()).toEqual(['hub-outbox-hub-gateway', 'hub-outbox-hub-ops']);
        for (const sm of sms) {
          expect(sm.metadata.labels).toMatchObject({ release: 'prometheus' });
          const component = String(sm.metadata.name).replace('hub-outbox-hub-', '');
          // Follow ServiceMonitor -> Service (by its selector) -> named service port -> container port.
          const selected = services.filter((s) => matches(sm.spec.selector.matchLabels, s.metadata?.labels));
          expect({ component, selected: selected.length }).toEqual({ component, selected: 1 });
          const svc = selected[0];
          expect(matches(svc?.spec?.selector, ds.get(component)?.spec?.template.metadata?.labels)).toBe(true);
          for (const ep of sm.spec.endpoints ?? []) {
            expect(ep.path).toBe('/metrics');
            const sp = svc?.spec?.ports?.find((p) => p.name === ep.port);
            const cp = container(ds.get(component)).ports?.find((p) => p.name === sp?.targetPort);
            expect({ component, port: cp?.containerPort }).toEqual({ component, port: metricsPort(component) });
          }
        }
        // The gateway's metrics Service is internal even where the gateway's own Service is exposed.
        const gwMetrics = services.find((s) => s.metadata?.name === 'hub-outbox-hub-gateway-metrics');
        expect(gwMetrics?.spec?.type).toBe('ClusterIP');
        const pms = await list('podmonitors');
        expect(pms).toHaveLength(1);
        for (const [component, d] of ds) {
          if (!matches(pms[0]?.spec.selector.matchLabels, d.spec?.template.metadata?.labels))
            throw new Error(`PodMonitor misses ${component}`);
          const ports = new Map(container(d).ports?.map((p) => [p.name, p.containerPort]));
          const scraped = (pms[0]?.spec.podMetricsEndpoints ?? []).map((e) => ports.get(e.port)).filter((p) => p);
          expect({ component, scraped }).toEqual({ component, scraped: [metricsPort(component)] });
        }
      });

      it('holds the dashboard and alert-rule ConfigMaps with their sidecar labels', async () => {
        const cms = new Map(
          (await core.listNamespacedConfigMap({ namespace: NS, labelSelector: INSTANCE })).items.map((c) => [c.metadata?.name, c]),
        );
        expect(cms.get('hub-outbox-hub-dashboard')?.metadata?.labels).toMatchObject({ grafana_dashboard: '1' });
        expect(cms.get('hub-outbox-hub-alerts')?.metadata?.labels).toMatchObject({ prometheus_rule: '1' });
        expect(cms.get('hub-outbox-hub-config')?.data).toMatchObject({ OUTBOX_PARTITIONS: '32' });
      });
    });
  },
  { crds: true },
);
