/**
 * A real single-node Kubernetes cluster on this machine, for the chart's tests and `make cluster`:
 * etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy (built from the
 * Go module proxy into the tools cache), containerd and runc (Debian) with a CNI bridge, CoreDNS (a
 * host process answering on the bridge), and SecantusDB on the bridge's address as the database the
 * pods use. Nothing is pulled from a container registry: the hub's image (`make image`) and a pause
 * image compiled from Kubernetes' `pause.c` are imported into containerd.
 *
 * Everything lives in one directory (`OUTBOX_HUB_CLUSTER_DIR`, default under the system's temporary
 * folder) with a `state.json` that names every process, the bridge and the network namespaces; one
 * cluster per machine (kube-proxy's iptables chains are global). {@link stopCluster} removes all of
 * it: pods first (so their sandboxes and network namespaces go the normal way), then every process,
 * mount, namespace, cgroup, iptables chain and the bridge. A watchdog does the same when the process
 * that started the cluster (jest) dies without stopping it.
 *
 * Machine quirks this handles (found on the 2-core cgroup-v1 test machine): kubelet refuses cgroup v1
 * unless told `failCgroupV1: false`; runc cannot start a sandbox until containerd's CRI plugin sets
 * `restrict_oom_score_adj` (no CAP_SYS_RESOURCE); containers need raised nofile/nproc limits.
 */
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, startSecantus } from './server.js';
import { KUBE_VERSION, alive, startKubeServer, missingKubeTools, stopPids, tail } from './kube-server.js';

/** The bridge the pods live on; its first address is the host's (API server, database, DNS). */
export const CLUSTER_BRIDGE = 'obhub0';
export const POD_SUBNET = '10.244.0.0/24';
export const HOST_ADDRESS = '10.244.0.1';
export const SERVICE_SUBNET = '10.96.0.0/16';
export const NODE_NAME = 'outbox-hub-node';
/** The image tag `make image` builds and the pause image the harness makes. */
export const HUB_IMAGE = 'localhost/outbox-hub:dev';
export const PAUSE_IMAGE = 'localhost/pause:3.10';

export function clusterDir(): string {
  return process.env['OUTBOX_HUB_CLUSTER_DIR'] ?? join(tmpdir(), 'outbox-hub-cluster');
}

/** Where the Makefile puts the node components (links in .tools/bin). */
export function clusterToolPaths(
  root = process.cwd(),
): Record<'kubelet' | 'controllerManager' | 'scheduler' | 'proxy' | 'kubectl' | 'pause' | 'coredns' | 'helm' | 'prometheus', string> {
  const bin = (name: string): string => resolve(root, '.tools/bin', name);
  return {
    kubelet: bin('kubelet'),
    controllerManager: bin('kube-controller-manager'),
    scheduler: bin('kube-scheduler'),
    proxy: bin('kube-proxy'),
    kubectl: bin('kubectl'),
    pause: bin('pause'),
    coredns: bin('coredns'),
    helm: process.env['HELM_BIN'] ?? bin('helm'),
    // Debian's Prometheus is built without Kubernetes service discovery: this one is from the Go module proxy.
    prometheus: bin('prometheus'),
  };
}

const CNI_BIN = '/usr/lib/cni';

function onPath(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/** What is missing to run the cluster, as phrases; empty when everything is there. */
export function missingClusterTools(root = process.cwd()): string[] {
  const missing = missingKubeTools({}, root);
  for (const [what, path] of Object.entries(clusterToolPaths(root))) if (!existsSync(path)) missing.push(`${what} (${path})`);
  for (const cmd of ['containerd', 'ctr', 'runc', 'iptables', 'ip', 'podman', 'conntrack'])
    if (!onPath(cmd)) missing.push(`${cmd} (Debian package)`);
  for (const plugin of ['bridge', 'host-local', 'loopback'])
    if (!existsSync(join(CNI_BIN, plugin))) missing.push(`CNI plugin ${plugin} (containernetworking-plugins)`);
  if (process.getuid?.() !== 0) missing.push('root (kubelet, containerd and the bridge need it)');
  if (missing.length === 0 && spawnSync('podman', ['image', 'exists', HUB_IMAGE]).status !== 0)
    missing.push(`the image ${HUB_IMAGE} (make image)`);
  return missing;
}

export interface ClusterState {
  readonly dir: string;
  /** https://10.244.0.1:port */
  readonly server: string;
  readonly caFile: string;
  readonly adminToken: string;
  readonly adminKubeconfig: string;
  /** The database the pods use (on the bridge), with directConnection. */
  readonly mongoUrl: string;
  /** Processes to stop, in this order. */
  readonly pids: Record<string, number>;
  readonly watchdog?: number;
  /** Network namespaces present before the cluster started (the ones made after are its pods'). */
  readonly netnsBefore: readonly string[];
}

function run(cmd: string, args: readonly string[], options: { input?: string; allowFail?: boolean } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: options.input, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0 && !options.allowFail) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

function netnsNames(): string[] {
  try {
    return readdirSync('/var/run/netns');
  } catch {
    // No namespace was ever made on this machine.
    return [];
  }
}

/** Mount points at or under `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  const points = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => p !== undefined && (p === dir || p.startsWith(`${dir}/`)));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** What a cluster leaves behind on this machine after {@link stopCluster}: empty when clean. */
export function clusterLeftovers(state: Pick<ClusterState, 'dir' | 'pids' | 'netnsBefore'>): string[] {
  const left: string[] = [];
  for (const [name, pid] of Object.entries(state.pids)) if (alive(pid)) left.push(`process ${name} (${pid})`);
  for (const m of mountsUnder(state.dir)) left.push(`mount ${m}`);
  if (spawnSync('ip', ['link', 'show', CLUSTER_BRIDGE]).status === 0) left.push(`bridge ${CLUSTER_BRIDGE}`);
  for (const ns of netnsNames()) if (!state.netnsBefore.includes(ns) && ns.startsWith('cni-')) left.push(`network namespace ${ns}`);
  for (const p of shimPids(state.dir)) left.push(`containerd shim ${p}`);
  for (const cmd of ['iptables', 'ip6tables'])
    if (/^:KUBE-/m.test(run(`${cmd}-save`, [], { allowFail: true }))) left.push(`${cmd} chains of kubelet or kube-proxy`);
  if (existsSync(state.dir)) left.push(`directory ${state.dir}`);
  return left;
}

/** containerd shims serving our containerd (they outlive it by design). */
function shimPids(dir: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmd.includes('containerd-shim') && cmd.includes(join(dir, 'containerd'))) out.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}

/** Removes the cgroup directories under `root` deepest first (they must be empty of processes). */
function removeCgroups(name: string): void {
  let controllers: string[];
  try {
    controllers = readdirSync('/sys/fs/cgroup');
  } catch {
    return; // no cgroup file system here
  }
  for (const c of controllers) {
    const top = join('/sys/fs/cgroup', c, name);
    if (!existsSync(top)) continue;
    const walk = (d: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
      try {
        rmdirSync(d);
      } catch {
        // Busy: a process is still in it; reported by the caller's leftovers check.
      }
    };
    walk(top);
  }
}

/**
 * Removes the iptables chains kubelet makes (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT)
 * and whatever kube-proxy's own cleanup left: first the rules of other chains that jump to a KUBE-
 * chain, then the KUBE- chains. One cluster per machine, so every KUBE- chain is this cluster's.
 */
function removeKubeChains(): void {
  for (const cmd of ['iptables', 'ip6tables']) {
    const saved = run(`${cmd}-save`, [], { allowFail: true });
    let table = '';
    const jumps: string[] = [];
    const chains: string[] = [];
    for (const line of saved.split('\n')) {
      if (line.startsWith('*')) table = line.slice(1);
      else if (line.startsWith(':KUBE-')) chains.push(`-t ${table} -X ${line.slice(1).split(' ')[0]!}`);
      else if (/^-A (?!KUBE-)\S+ .*-j KUBE-/.test(line)) jumps.push(`-t ${table} -D ${line.slice(3)}`);
    }
    // The rules come from iptables-save, whose quoting the shell reads back.
    for (const rule of jumps) spawnSync('sh', ['-c', `${cmd} ${rule}`]);
    for (const chain of chains) spawnSync('sh', ['-c', `${cmd} ${chain.replace(' -X ', ' -F ')}`]);
    for (const chain of chains) spawnSync('sh', ['-c', `${cmd} ${chain}`]);
  }
}

const WATCHDOG = `
const { spawnSync } = require('child_process');
const [parent, script, dir] = process.argv.slice(1);
const alive = (p) => { try { process.kill(Number(p), 0); return true; } catch { return false; } };
setInterval(() => {
  if (!require('fs').existsSync(dir + '/state.json')) process.exit(0);
  if (alive(parent)) return;
  spawnSync(process.execPath, [script, 'down'], { stdio: 'inherit', env: { ...process.env, OUTBOX_HUB_CLUSTER_DIR: dir } });
  process.exit(0);
}, 1000);
`;

/** The compiled command line of this harness (`node dist/test/harness/cluster-cli.js up|down`). */
export function clusterCli(root = process.cwd()): string {
  return resolve(root, 'dist/test/harness/cluster-cli.js');
}

/**
 * Starts the cluster in {@link clusterDir} and waits until the node is Ready and CoreDNS answers.
 * `watchPid`: the cluster is removed when that process dies (jest).
 */
export async function startCluster(options: { watchPid?: number; log?: (line: string) => void } = {}): Promise<ClusterState> {
  const log = options.log ?? ((line: string) => process.stderr.write(`[cluster] ${line}\n`));
  const missing = missingClusterTools();
  if (missing.length) throw new Error(`cannot start the cluster, missing: ${missing.join(', ')}`);
  const dir = clusterDir();
  if (existsSync(join(dir, 'state.json'))) throw new Error(`a cluster is already running in ${dir} (stop it with 'make cluster-down')`);
  if (spawnSync('ip', ['link', 'show', CLUSTER_BRIDGE]).status === 0)
    throw new Error(`the bridge ${CLUSTER_BRIDGE} exists: another cluster's leftovers? ('make cluster-down')`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const t0 = Date.now();
  const pids: Record<string, number> = {};
  const netnsBefore = netnsNames();
  // Written as soon as something exists, so a failed start is cleaned like a finished one.
  const save = (extra: Partial<ClusterState> = {}): void =>
    writeFileSync(join(dir, 'state.json'), JSON.stringify({ dir, pids, netnsBefore, ...extra }));
  save();
  const tools = clusterToolPaths();
  const launch = (name: string, binary: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): number => {
    const fd = openSync(join(dir, `${name}.log`), 'a');
    const child = spawn(binary, args, { detached: true, stdio: ['ignore', fd, fd], env, cwd: dir });
    closeSync(fd);
    child.unref();
    if (child.pid === undefined) throw new Error(`${name} did not start`);
    pids[name] = child.pid;
    save();
    return child.pid;
  };
  const waitFor = async (
    what: string,
    name: string | undefined,
    check: () => boolean | Promise<boolean>,
    timeoutMs = 60_000,
  ): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (name && !alive(pids[name]!)) throw new Error(`${name} exited while waiting for ${what}:\n${tail(join(dir, `${name}.log`))}`);
      try {
        if (await check()) return;
      } catch {
        // Not yet: retried until the deadline, which reports the log.
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${name ? `:\n${tail(join(dir, `${name}.log`))}` : ''}`);
      await sleep(250);
    }
  };
  let watchdog: number | undefined;
  try {
    if (options.watchPid !== undefined) {
      const w = spawn(process.execPath, ['-e', WATCHDOG, String(options.watchPid), clusterCli(), dir], { detached: true, stdio: 'ignore' });
      w.unref();
      watchdog = w.pid;
      save(watchdog ? { watchdog } : {});
    }
    // The bridge first: the API server, the database and DNS listen on its address.
    run('ip', ['link', 'add', CLUSTER_BRIDGE, 'type', 'bridge']);
    run('ip', ['addr', 'add', `${HOST_ADDRESS}/24`, 'dev', CLUSTER_BRIDGE]);
    run('ip', ['link', 'set', CLUSTER_BRIDGE, 'up']);
    writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');

    mkdirSync(join(dir, 'secantus'));
    const db = await startSecantus({ host: HOST_ADDRESS, dataDir: join(dir, 'secantus'), detached: true });
    pids['secantusdb'] = db.pid!;
    const mongoUrl = `${db.url}?directConnection=true`;
    save();

    const kube = await startKubeServer({
      dir: join(dir, 'kube'),
      bindAddress: HOST_ADDRESS,
      advertiseAddress: HOST_ADDRESS,
      // Logs, exec and port-forward go to the kubelet by the node's address (its name resolves nowhere).
      extraArgs: ['--kubelet-preferred-address-types=InternalIP'],
    });
    [pids['kube-apiserver'], pids['etcd']] = kube.pids as [number, number];
    save();
    const kubeconfig = kube.adminKubeconfig;
    const kubectl = (...args: string[]): string => run(tools.kubectl, ['--kubeconfig', kubeconfig, ...args]);

    // containerd with the CRI plugin, cgroupfs, our CNI bridge and the pause image we import.
    const cd = join(dir, 'containerd');
    mkdirSync(join(dir, 'cni/net.d'), { recursive: true });
    writeFileSync(
      join(dir, 'cni/net.d/10-outbox-hub.conflist'),
      JSON.stringify({
        cniVersion: '0.4.0',
        name: 'outbox-hub',
        plugins: [
          {
            type: 'bridge',
            bridge: CLUSTER_BRIDGE,
            isGateway: true,
            ipMasq: false,
            hairpinMode: true,
            ipam: {
              type: 'host-local',
              ranges: [[{ subnet: POD_SUBNET, gateway: HOST_ADDRESS }]],
              routes: [{ dst: '0.0.0.0/0' }],
              dataDir: join(dir, 'cni/ipam'),
            },
          },
        ],
      }),
    );
    const sock = join(cd, 'containerd.sock');
    writeFileSync(
      join(dir, 'containerd.toml'),
      `version = 2
root = "${cd}/root"
state = "${cd}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "${sock}"
[ttrpc]
  address = "${sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  # No CAP_SYS_RESOURCE here: runc fails every sandbox ("can't get final child's PID from pipe") otherwise.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${CNI_BIN}"
    conf_dir = "${dir}/cni/net.d"
`,
    );
    launch('containerd', 'containerd', ['--config', join(dir, 'containerd.toml')]);
    await waitFor('containerd', 'containerd', () => run('ctr', ['--address', sock, 'version'], { allowFail: false }).includes('Server'));

    // Images: the pause binary in an empty image, and the hub's image, both from podman.
    const images = join(dir, 'images');
    mkdirSync(images, { recursive: true });
    writeFileSync(join(images, 'Containerfile'), 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n');
    execFileSync('cp', [tools.pause, join(images, 'pause')]);
    run('podman', ['build', '--quiet', '--pull=never', '-t', PAUSE_IMAGE, images]);
    for (const [image, file] of [
      [PAUSE_IMAGE, 'pause.tar'],
      [HUB_IMAGE, 'hub.tar'],
    ] as const) {
      run('podman', ['save', '--quiet', '--format=oci-archive', '-o', join(images, file), image]);
      run('ctr', ['--address', sock, '-n', 'k8s.io', 'images', 'import', '--base-name', image.split(':')[0]!, join(images, file)]);
      rmSync(join(images, file));
    }
    log(`containerd ready, images imported (${Date.now() - t0} ms)`);

    // CoreDNS as a host process on the bridge (pods' resolv.conf points at it).
    writeFileSync(
      join(dir, 'Corefile'),
      `.:53 {
  bind ${HOST_ADDRESS}
  errors
  kubernetes cluster.local in-addr.arpa ip6.arpa {
    kubeconfig ${kubeconfig} test
    pods insecure
    fallthrough in-addr.arpa ip6.arpa
  }
  cache 5
}
`,
    );
    launch('coredns', tools.coredns, ['-conf', join(dir, 'Corefile')]);

    const [cmPort, schedPort, proxyHealth, proxyMetrics] = [await freePort(), await freePort(), await freePort(), await freePort()];
    // Both controllers: the admin's kubeconfig for everything, serving only on loopback, no election (one of each).
    const controller = (port: number): string[] => [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${port}`,
      '--leader-elect=false',
    ];
    launch('kube-controller-manager', tools.controllerManager, [
      ...controller(cmPort),
      // Publishes kube-root-ca.crt in every namespace: projected service-account volumes need it.
      `--root-ca-file=${kube.caFile}`,
      `--service-account-private-key-file=${join(dir, 'kube/sa.key')}`,
      `--service-cluster-ip-range=${SERVICE_SUBNET}`,
      '--use-service-account-credentials=false',
    ]);
    launch('kube-scheduler', tools.scheduler, controller(schedPort));

    const kubeletDir = join(dir, 'kubelet');
    mkdirSync(kubeletDir, { recursive: true });
    writeFileSync(
      join(dir, 'kubelet.yaml'),
      JSON.stringify({
        apiVersion: 'kubelet.config.k8s.io/v1beta1',
        kind: 'KubeletConfiguration',
        // This machine has cgroup v1 only (kubelet refuses it by default since 1.35).
        failCgroupV1: false,
        cgroupDriver: 'cgroupfs',
        containerRuntimeEndpoint: `unix://${sock}`,
        authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
        authorization: { mode: 'AlwaysAllow' },
        address: HOST_ADDRESS,
        port: 10250,
        readOnlyPort: 0,
        healthzBindAddress: '127.0.0.1',
        healthzPort: 0,
        clusterDNS: [HOST_ADDRESS],
        clusterDomain: 'cluster.local',
        failSwapOn: false,
        resolvConf: '/etc/resolv.conf',
        // A test node: images are imported, never garbage-collected or evicted for disk.
        imageGCHighThresholdPercent: 100,
        evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
        serializeImagePulls: false,
        shutdownGracePeriod: '0s',
        localStorageCapacityIsolation: false,
      }),
    );
    launch('kubelet', tools.kubelet, [
      `--config=${join(dir, 'kubelet.yaml')}`,
      `--kubeconfig=${kubeconfig}`,
      `--root-dir=${kubeletDir}`,
      `--hostname-override=${NODE_NAME}`,
      `--node-ip=${HOST_ADDRESS}`,
      '--v=1',
    ]);
    writeFileSync(
      join(dir, 'kube-proxy.yaml'),
      JSON.stringify({
        apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
        kind: 'KubeProxyConfiguration',
        clientConnection: { kubeconfig },
        hostnameOverride: NODE_NAME,
        mode: 'iptables',
        clusterCIDR: POD_SUBNET,
        healthzBindAddress: `127.0.0.1:${proxyHealth}`,
        metricsBindAddress: `127.0.0.1:${proxyMetrics}`,
        // Replies from a pod to a pod that reached it through a Service go back through the host.
        iptables: { masqueradeAll: true },
        // Not ours to change on a shared machine (and not allowed in a container).
        conntrack: { maxPerCore: 0 },
      }),
    );
    launch('kube-proxy', tools.proxy, [`--config=${join(dir, 'kube-proxy.yaml')}`]);

    await waitFor(
      'the node to be Ready',
      'kubelet',
      () => kubectl('get', 'node', NODE_NAME, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}').trim() === 'True',
      120_000,
    );
    // Pods need the default ServiceAccount and kube-root-ca.crt, which the controller manager makes.
    await waitFor('the default ServiceAccount', 'kube-controller-manager', () =>
      kubectl('get', 'serviceaccount', 'default', '-o', 'name').includes('default'),
    );
    const state: ClusterState = {
      dir,
      server: kube.server,
      caFile: kube.caFile,
      adminToken: kube.adminToken,
      adminKubeconfig: kubeconfig,
      mongoUrl,
      pids,
      netnsBefore,
      ...(watchdog ? { watchdog } : {}),
    };
    writeFileSync(join(dir, 'state.json'), JSON.stringify(state));
    log(`Kubernetes ${KUBE_VERSION} node Ready in ${Date.now() - t0} ms (API ${kube.server}, database ${mongoUrl})`);
    return state;
  } catch (err) {
    await stopCluster(dir, { log });
    throw err;
  }
}

/** Reads a running cluster's state, or undefined when none is running. */
export function readCluster(dir = clusterDir()): ClusterState | undefined {
  const file = join(dir, 'state.json');
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as ClusterState;
}

/**
 * Removes the cluster in `dir`: its pods (so kubelet tears their sandboxes down the normal way),
 * then every process, container, mount, network namespace, cgroup, iptables chain and the bridge.
 * Idempotent; returns what could not be removed (empty when clean).
 */
export async function stopCluster(dir = clusterDir(), options: { log?: (line: string) => void } = {}): Promise<string[]> {
  const log = options.log ?? ((line: string) => process.stderr.write(`[cluster] ${line}\n`));
  const state = readCluster(dir) as
    (Partial<ClusterState> & { pids: Record<string, number>; netnsBefore: string[]; dir: string }) | undefined;
  if (!state) {
    rmSync(dir, { recursive: true, force: true });
    return [];
  }
  const pids = state.pids;
  const tools = clusterToolPaths();
  const kubeconfig = join(dir, 'kube/admin.kubeconfig');
  const sock = join(dir, 'containerd/containerd.sock');
  /** The containers' tasks containerd still runs; undefined when it does not answer. */
  const tasks = (): string[] | undefined => {
    const r = spawnSync('ctr', ['--address', sock, '-n', 'k8s.io', 'tasks', 'ls', '-q'], { encoding: 'utf8', timeout: 5_000 });
    return r.status === 0 ? r.stdout.split('\n').filter(Boolean) : undefined;
  };
  // Pods first, while kubelet and the API server still run: each sandbox is stopped by kubelet
  // (CNI DEL, network namespace removed). Bounded: a broken cluster must still be removed.
  if (pids['kubelet'] && alive(pids['kubelet']) && pids['kube-apiserver'] && alive(pids['kube-apiserver']) && existsSync(kubeconfig)) {
    spawnSync(tools.kubectl, ['--kubeconfig', kubeconfig, 'delete', 'namespace', '--all', '--wait=false'], { timeout: 15_000 });
    spawnSync(
      tools.kubectl,
      ['--kubeconfig', kubeconfig, 'delete', 'pods', '--all', '--all-namespaces', '--grace-period=0', '--force', '--wait=false'],
      { timeout: 15_000 },
    );
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (!tasks()?.length) break;
      await sleep(250);
    }
  }
  const order = ['kube-proxy', 'kubelet', 'coredns', 'kube-scheduler', 'kube-controller-manager', 'kube-apiserver', 'etcd', 'secantusdb'];
  await stopPids(order.flatMap((name) => (pids[name] === undefined ? [] : [pids[name]])));
  // Containers kubelet did not get to: kill their tasks through containerd, then containerd itself.
  if (pids['containerd'] && alive(pids['containerd'])) {
    for (const id of tasks() ?? [])
      spawnSync('ctr', ['--address', sock, '-n', 'k8s.io', 'tasks', 'kill', '-s', 'SIGKILL', id], { timeout: 5_000 });
    await stopPids([pids['containerd']]);
  }
  // Shims outlive containerd by design; their containers die with them (SIGKILL to the shim's group).
  for (const pid of shimPids(dir)) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Not a group leader: the shim alone.
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  }
  if (state.watchdog && alive(state.watchdog) && state.watchdog !== process.pid && state.watchdog !== process.ppid)
    process.kill(state.watchdog, 'SIGKILL');
  // kube-proxy's chains, the pods' network namespaces, mounts, cgroups, the bridge.
  if (existsSync(tools.proxy)) spawnSync(tools.proxy, ['--cleanup'], { timeout: 30_000 });
  removeKubeChains();
  for (const ns of netnsNames()) {
    if (state.netnsBefore.includes(ns) || !ns.startsWith('cni-')) continue;
    spawnSync('umount', ['-l', join('/var/run/netns', ns)]);
    rmSync(join('/var/run/netns', ns), { force: true });
  }
  for (const m of mountsUnder(dir)) spawnSync('umount', ['-l', m]);
  removeCgroups('kubepods');
  removeCgroups('k8s.io');
  spawnSync('ip', ['link', 'del', CLUSTER_BRIDGE]);
  const left = clusterLeftovers({ dir, pids, netnsBefore: state.netnsBefore }).filter((l) => !l.startsWith('directory '));
  if (left.length === 0) rmSync(dir, { recursive: true, force: true });
  else log(`could not remove: ${left.join(', ')} (state kept in ${dir})`);
  return left;
}

export const HUB_RELEASE = 'hub';
export const HUB_NAMESPACE = 'events';
/** Fixed secrets of the test installation (a throw-away cluster on loopback and a private bridge). */
export const CLUSTER_JWT_SECRET = 'cluster-test-secret-0123456789abcdef0123';
export const CLUSTER_ADMIN_TOKEN = 'cluster-admin-token-0123456789';

/** helm against the cluster as admin; resolves with stdout, rejects with stderr. */
export async function clusterHelm(state: Pick<ClusterState, 'dir' | 'adminKubeconfig'>, ...args: string[]): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(clusterToolPaths().helm, [...args, '--kubeconfig', state.adminKubeconfig], {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      env: {
        ...process.env,
        HELM_CACHE_HOME: join(state.dir, 'helm/cache'),
        HELM_CONFIG_HOME: join(state.dir, 'helm/config'),
        HELM_DATA_HOME: join(state.dir, 'helm/data'),
      },
    });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`helm ${args.join(' ')} failed: ${e.stderr || e.stdout || e.message}`, { cause: err });
  }
}

/** kubectl against the cluster as admin. */
export function clusterKubectl(state: Pick<ClusterState, 'adminKubeconfig'>, ...args: string[]): string {
  return run(clusterToolPaths().kubectl, ['--kubeconfig', state.adminKubeconfig, ...args]);
}

/** The chart's values for this cluster: the local image, the bridge's database, Kubernetes leases. */
export function hubValues(state: Pick<ClusterState, 'mongoUrl'>, database = 'outbox_hub'): string[] {
  return [
    'image.repository=localhost/outbox-hub',
    'image.tag=dev',
    // Imported into containerd, never pulled.
    'image.pullPolicy=Never',
    `mongodb.url=${state.mongoUrl}`,
    `mongodb.database=${database}`,
    `jwt.secret=${CLUSTER_JWT_SECRET}`,
    `ops.adminToken=${CLUSTER_ADMIN_TOKEN}`,
    'leaseBackend=kubernetes',
  ].flatMap((v) => ['--set', v]);
}

/** `helm install` (or upgrade) of the chart from this repository, waiting for every pod to be Ready. */
export async function installHub(
  state: Pick<ClusterState, 'dir' | 'adminKubeconfig' | 'mongoUrl'>,
  extra: readonly string[] = [],
  database = 'outbox_hub',
): Promise<{ fullname: string; jwtSecret: string; adminToken: string; database: string; output: string }> {
  const output = await clusterHelm(
    state,
    'upgrade',
    '--install',
    HUB_RELEASE,
    resolve('helm/outbox-hub'),
    '--namespace',
    HUB_NAMESPACE,
    '--create-namespace',
    '--wait',
    '--timeout',
    '5m',
    ...hubValues(state, database),
    ...extra,
  );
  return { fullname: `${HUB_RELEASE}-outbox-hub`, jwtSecret: CLUSTER_JWT_SECRET, adminToken: CLUSTER_ADMIN_TOKEN, database, output };
}
