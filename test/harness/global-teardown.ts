import { readFileSync, rmSync } from 'node:fs';
import { finishKubeRun, KUBE_RUN_ENV } from './kube-server.js';

/** Stops the FerretDB the global setup started (containers are reaped by testcontainers) and the run's Kubernetes API server. */
export default async function globalTeardown(): Promise<void> {
  await finishKubeRun(process.env[KUBE_RUN_ENV]);
  const stateFile = process.env['OUTBOX_HUB_TEST_STATE'];
  if (!stateFile) return;
  const state = JSON.parse(readFileSync(stateFile, 'utf8')) as { backend: string; pid?: number; dir?: string };
  if (state.backend === 'ferretdb' && state.pid) {
    try {
      process.kill(state.pid, 'SIGTERM');
    } catch {
      // already gone
    }
    await new Promise((r) => setTimeout(r, 300));
    if (state.dir) rmSync(state.dir, { recursive: true, force: true });
  }
  rmSync(stateFile, { force: true });
}
