/**
 * A real Kubernetes API server for tests: etcd and kube-apiserver (built from the
 * Go module proxy by the Makefile into .tools/bin) on loopback ports, with a fresh
 * data directory, a static admin token, RBAC, and a service-account signing key so
 * TokenRequest works. There is no controller-manager, scheduler or kubelet:
 * Deployments never get ReplicaSets, pods never run, namespaces get no `default`
 * ServiceAccount and namespace deletion never finishes.
 *
 * One instance per jest run, started lazily by the first test file that needs it
 * (a lock directory in the run directory the global setup creates decides which
 * worker starts it), stopped by the global teardown, and by a watchdog if the jest
 * process dies without a teardown.
 */
import { execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './server.js';

/** Pinned versions, as built by the Makefile. */
export const KUBE_VERSION = 'v1.36.3';
export const ETCD_VERSION = 'v3.6.16';
export const PROMETHEUS_OPERATOR_VERSION = 'v0.85.0';

/** Environment variable naming this run's directory (set by the global setup). */
export const KUBE_RUN_ENV = 'OUTBOX_HUB_KUBE_RUN';
/** Environment variable with the jest main process id (for the watchdog). */
export const JEST_PID_ENV = 'OUTBOX_HUB_JEST_PID';

/** Where the Makefile puts the binaries and CRDs. */
export function kubeToolPaths(root = process.cwd()): { etcd: string; apiserver: string; crds: string } {
  return {
    etcd: process.env['ETCD_BIN'] ?? resolve(root, '.tools/bin/etcd'),
    apiserver: process.env['KUBE_APISERVER_BIN'] ?? resolve(root, '.tools/bin/kube-apiserver'),
    crds: process.env['PROMETHEUS_CRDS_DIR'] ?? resolve(root, `.tools/crds/prometheus-operator-${PROMETHEUS_OPERATOR_VERSION}`),
  };
}

/** What is missing to run a real API server, as `what (path)` phrases; empty when everything is there. */
export function missingKubeTools(options: { crds?: boolean } = {}, root = process.cwd()): string[] {
  const p = kubeToolPaths(root);
  const missing: string[] = [];
  if (!existsSync(p.etcd)) missing.push(`etcd ${ETCD_VERSION} (${p.etcd})`);
  if (!existsSync(p.apiserver)) missing.push(`kube-apiserver ${KUBE_VERSION} (${p.apiserver})`);
  if (options.crds && !existsSync(p.crds)) missing.push(`prometheus-operator ${PROMETHEUS_OPERATOR_VERSION} CRDs (${p.crds})`);
  return missing;
}

/** Connection details of a running API server, as shared between workers. */
export interface KubeEndpoint {
  /** https://127.0.0.1:port */
  readonly server: string;
  /** CA bundle that verifies the server's self-signed certificate. */
  readonly caFile: string;
  /** Static token of a member of system:masters. */
  readonly adminToken: string;
  /** A kubeconfig file for the admin (for helm and processes). */
  readonly adminKubeconfig: string;
  /** Directory for scratch files of this instance. */
  readonly dir: string;
}

interface State extends KubeEndpoint {
  pids: number[];
  watchdog?: number;
}

/** A kubeconfig (YAML is a superset of JSON) for `token` against `endpoint`, with `namespace` as the default. */
export function kubeconfigText(endpoint: Pick<KubeEndpoint, 'server' | 'caFile'>, token: string, namespace = 'default'): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'test', cluster: { server: endpoint.server, 'certificate-authority': endpoint.caFile } }],
    users: [{ name: 'user', user: { token } }],
    contexts: [{ name: 'test', context: { cluster: 'test', user: 'user', namespace } }],
    'current-context': 'test',
  });
}

async function get(url: string, ca: Buffer, token: string): Promise<{ status: number; body: string }> {
  return new Promise((ok, fail) => {
    const req = request(url, { ca, headers: { authorization: `Bearer ${token}` }, timeout: 5_000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => ok({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', fail);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** Whether process `pid` exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The last `lines` lines of a log file. */
export function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Stops processes one after the other: SIGTERM, then SIGKILL after `graceMs` each. */
export async function stopPids(pids: readonly number[], graceMs = 5_000): Promise<void> {
  for (const pid of pids) {
    if (!alive(pid)) continue;
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (alive(pid) && Date.now() < deadline) await sleep(50);
    if (alive(pid)) process.kill(pid, 'SIGKILL');
  }
}

/**
 * Kills the servers when `parentPid` is gone (jest crashed or was killed before its
 * teardown), so an interrupted run leaves no API server behind; exits when they are gone.
 */
const WATCHDOG = `
const [parent, dir, ...pids] = process.argv.slice(1);
const alive = (p) => { try { process.kill(Number(p), 0); return true; } catch { return false; } };
setInterval(() => {
  if (!pids.some(alive)) process.exit(0);
  if (alive(parent)) return;
  for (const p of pids) { try { process.kill(Number(p), 'SIGKILL'); } catch {} }
  require('fs').rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}, 1000);
`;

/**
 * Starts etcd and kube-apiserver in `dir` (created fresh when omitted), detached
 * from this process, and waits until `/readyz` answers ok.
 */
export async function startKubeServer(
  options: {
    dir?: string;
    watchPid?: number;
    timeoutMs?: number;
    /** What the watchdog removes (default: dir). */ scratch?: string;
    /** Address to serve on (default 127.0.0.1); clients use it too. */ bindAddress?: string;
    /** Address written into the `kubernetes` Endpoints (default: one nothing routes to). */ advertiseAddress?: string;
    /** More kube-apiserver flags. */ extraArgs?: readonly string[];
  } = {},
): Promise<State> {
  const missing = missingKubeTools();
  if (missing.length) throw new Error(`cannot start a Kubernetes API server, missing: ${missing.join(', ')}; run 'make kube-tools'`);
  const tools = kubeToolPaths();
  // The tools folder caches by path: a binary left from an earlier pin must not pass for the pinned one.
  for (const [binary, want] of [
    [tools.etcd, `etcd Version: ${ETCD_VERSION.slice(1)}`],
    [tools.apiserver, `Kubernetes ${KUBE_VERSION}`],
  ] as const) {
    const got = execFileSync(binary, ['--version'], { encoding: 'utf8' });
    if (!got.includes(want)) throw new Error(`${binary} is not ${want} (it says ${got.trim()}): delete it and run 'make kube-tools'`);
  }
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'outbox-hub-kube-'));
  mkdirSync(join(dir, 'certs'), { recursive: true });

  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const adminToken = randomBytes(24).toString('hex');
  writeFileSync(join(dir, 'tokens.csv'), `${adminToken},admin,admin-uid,"system:masters"\n`, { mode: 0o600 });

  const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
  const host = options.bindAddress ?? '127.0.0.1';
  const pids: number[] = [];
  const launch = (binary: string, args: string[], log: string): number => {
    const fd = openSync(join(dir, log), 'a');
    const child = spawn(binary, args, { detached: true, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    child.unref();
    if (child.pid === undefined) throw new Error(`${binary} did not start`);
    pids.push(child.pid);
    return child.pid;
  };
  const etcdUrl = `http://127.0.0.1:${etcdClient}`;
  const peerUrl = `http://127.0.0.1:${etcdPeer}`;
  const etcdPid = launch(
    tools.etcd,
    [
      '--name=test',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=test=${peerUrl}`,
      // Test data only: durability across power loss buys nothing here and fsync is slow on a shared disk.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ],
    'etcd.log',
  );
  const apiPid = launch(
    tools.apiserver,
    [
      `--bind-address=${host}`,
      `--secure-port=${apiPort}`,
      // Written into the `kubernetes` Endpoints object, which pods reach through the Service. Without
      // pods: a documentation-range address nothing routes to.
      `--advertise-address=${options.advertiseAddress ?? '192.0.2.10'}`,
      `--etcd-servers=${etcdUrl}`,
      `--cert-dir=${join(dir, 'certs')}`,
      `--token-auth-file=${join(dir, 'tokens.csv')}`,
      '--authorization-mode=RBAC',
      '--service-cluster-ip-range=10.96.0.0/16',
      '--service-account-issuer=https://kubernetes.default.svc',
      `--service-account-key-file=${join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      '--profiling=false',
      ...(options.extraArgs ?? []),
    ],
    'kube-apiserver.log',
  );
  let watchdog: number | undefined;
  if (options.watchPid !== undefined) {
    const w = spawn(process.execPath, ['-e', WATCHDOG, String(options.watchPid), options.scratch ?? dir, String(etcdPid), String(apiPid)], {
      detached: true,
      stdio: 'ignore',
    });
    w.unref();
    watchdog = w.pid;
  }

  const server = `https://${host}:${apiPort}`;
  const caFile = join(dir, 'certs', 'apiserver.crt');
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  let last = '';
  try {
    for (;;) {
      for (const [pid, what, log] of [
        [etcdPid, 'etcd', 'etcd.log'],
        [apiPid, 'kube-apiserver', 'kube-apiserver.log'],
      ] as const)
        if (!alive(pid)) throw new Error(`${what} exited during startup:\n${tail(join(dir, log))}`);
      if (existsSync(caFile)) {
        try {
          const r = await get(`${server}/readyz`, readFileSync(caFile), adminToken);
          if (r.status === 200) break;
          last = `${r.status} ${r.body.slice(0, 500)}`;
        } catch (err) {
          last = String(err);
        }
      }
      if (Date.now() > deadline)
        throw new Error(
          `kube-apiserver not ready after ${options.timeoutMs ?? 120_000} ms (${last}):\n${tail(join(dir, 'kube-apiserver.log'))}`,
        );
      await sleep(250);
    }
  } catch (err) {
    await stopPids([apiPid, etcdPid], 1_000);
    throw err;
  }
  const adminKubeconfig = join(dir, 'admin.kubeconfig');
  writeFileSync(adminKubeconfig, kubeconfigText({ server, caFile }, adminToken), { mode: 0o600 });
  return { server, caFile, adminToken, adminKubeconfig, dir, pids: [apiPid, etcdPid], ...(watchdog ? { watchdog } : {}) };
}

/** Stops an instance recorded in `state` and removes its directory. */
export async function stopKubeServer(state: { pids: readonly number[]; watchdog?: number; dir: string }): Promise<void> {
  await stopPids(state.pids);
  if (state.watchdog !== undefined && alive(state.watchdog)) process.kill(state.watchdog, 'SIGKILL');
  rmSync(state.dir, { recursive: true, force: true });
}

/** Creates this run's directory; the first worker that needs an API server starts it there. */
export function prepareKubeRun(): string {
  const run = mkdtempSync(join(tmpdir(), 'outbox-hub-kube-run-'));
  process.env[KUBE_RUN_ENV] = run;
  process.env[JEST_PID_ENV] = String(process.pid);
  return run;
}

/** Stops the run's API server if a worker started one (global teardown). */
export async function finishKubeRun(run: string | undefined): Promise<void> {
  if (!run) return;
  const stateFile = join(run, 'state.json');
  if (existsSync(stateFile)) {
    const state = JSON.parse(readFileSync(stateFile, 'utf8')) as Partial<State> & { error?: string };
    if (state.pids && state.dir)
      await stopKubeServer({ pids: state.pids, dir: state.dir, ...(state.watchdog ? { watchdog: state.watchdog } : {}) });
  }
  rmSync(run, { recursive: true, force: true });
}

/**
 * The run's shared API server: started by the first caller (in whichever worker),
 * awaited by the others. Outside a jest run (no run directory) it starts a private
 * instance stopped when this process exits.
 */
export async function sharedKubeServer(): Promise<KubeEndpoint> {
  const run = process.env[KUBE_RUN_ENV];
  if (!run) {
    const state = await startKubeServer({ watchPid: process.pid });
    return state;
  }
  const stateFile = join(run, 'state.json');
  let starter = false;
  try {
    mkdirSync(join(run, 'lock'));
    starter = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  if (starter) {
    let state: State | { error: string };
    try {
      const jestPid = Number(process.env[JEST_PID_ENV]);
      const t0 = Date.now();
      state = await startKubeServer({ dir: join(run, 'server'), scratch: run, ...(jestPid ? { watchPid: jestPid } : {}) });
      process.stderr.write(
        `\n[test harness] kube-apiserver ${KUBE_VERSION} + etcd ${ETCD_VERSION} at ${state.server}, ready in ${Date.now() - t0} ms\n`,
      );
    } catch (err) {
      state = { error: err instanceof Error ? err.message : String(err) };
    }
    writeFileSync(`${stateFile}.tmp`, JSON.stringify(state));
    renameSync(`${stateFile}.tmp`, stateFile);
  }
  const deadline = Date.now() + 180_000;
  while (!existsSync(stateFile)) {
    if (Date.now() > deadline) throw new Error('timed out waiting for another worker to start the Kubernetes API server');
    await sleep(200);
  }
  const state = JSON.parse(readFileSync(stateFile, 'utf8')) as State | { error: string };
  if ('error' in state) throw new Error(state.error);
  return state;
}
