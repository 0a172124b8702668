/**
 * `make cluster` / `make cluster-down`: the test cluster (cluster.ts) left running with the hub
 * installed, for a developer to poke at; and its removal.
 *   node dist/test/harness/cluster-cli.js up | down | status
 */
import { join } from 'node:path';
import { alive } from './kube-server.js';
import { clusterDir, installHub, readCluster, startCluster, stopCluster, HUB_RELEASE, HUB_NAMESPACE } from './cluster.js';

const command = process.argv[2];

async function main(): Promise<number> {
  switch (command) {
    case 'up': {
      const state = readCluster() ?? (await startCluster());
      const hub = await installHub(state);
      const kc = `--kubeconfig ${state.adminKubeconfig}`;
      process.stdout.write(
        [
          '',
          `Cluster up in ${state.dir}; the hub is installed as release '${HUB_RELEASE}' in namespace '${HUB_NAMESPACE}'.`,
          `  kubectl:   export KUBECONFIG=${state.adminKubeconfig}   (kubectl is .tools/bin/kubectl)`,
          `  pods:      .tools/bin/kubectl ${kc} -n ${HUB_NAMESPACE} get pods`,
          `  ops:       .tools/bin/kubectl ${kc} -n ${HUB_NAMESPACE} port-forward svc/${hub.fullname}-ops 8081   then http://127.0.0.1:8081`,
          `  gateway:   .tools/bin/kubectl ${kc} -n ${HUB_NAMESPACE} port-forward svc/${hub.fullname}-gateway 8080:80   then ws://127.0.0.1:8080/ws`,
          `  JWT secret: ${hub.jwtSecret}   ops admin token: ${hub.adminToken}`,
          `  database:  ${state.mongoUrl} (database ${hub.database})`,
          `  logs:      ${join(state.dir, '*.log')}`,
          '  remove:    make cluster-down',
          '',
        ].join('\n'),
      );
      return 0;
    }
    case 'down': {
      const dir = clusterDir();
      const state = readCluster(dir);
      const left = await stopCluster(dir);
      if (state) process.stdout.write(left.length ? `left behind: ${left.join(', ')}\n` : `cluster in ${dir} removed\n`);
      else process.stdout.write(`no cluster in ${dir}\n`);
      return left.length ? 1 : 0;
    }
    case 'status': {
      const state = readCluster();
      if (!state) {
        process.stdout.write(`no cluster in ${clusterDir()}\n`);
        return 1;
      }
      const running = Object.values(state.pids).filter(alive).length;
      process.stdout.write(
        `cluster in ${state.dir}: API ${state.server}, processes running: ${running}/${Object.keys(state.pids).length}\n`,
      );
      return 0;
    }
    default:
      process.stderr.write('usage: cluster-cli.js up | down | status\n');
      return 2;
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
