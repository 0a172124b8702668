import { readFileSync, rmSync } from 'node:fs';
import { alive, finishKubeRun, KUBE_RUN_ENV } from './kube-server.js';
import { setTimeout as sleep } from 'node:timers/promises';
import type { StartedServer } from './global-setup.js';

/** Stops the servers the global setup started (containers are reaped by testcontainers) and the run's Kubernetes API server. */
export default async function globalTeardown(): Promise<void> {
  await finishKubeRun(process.env[KUBE_RUN_ENV]);
  const stateFile = process.env['OUTBOX_HUB_TEST_STATE'];
  if (!stateFile) return;
  const state = JSON.parse(readFileSync(stateFile, 'utf8')) as { servers: StartedServer[] };
  const ours = state.servers.filter((s) => ['secantusdb', 'ferretdb', 'mongo-java-server'].includes(s.backend) && s.pid);
  for (const s of ours) {
    try {
      process.kill(s.pid!, 'SIGCONT');
      process.kill(s.pid!, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  // Wait for all at once; SIGKILL whatever has not exited after 10 s (SecantusDB checkpoints on the way out).
  const deadline = Date.now() + 10_000;
  while (ours.some((s) => alive(s.pid!)) && Date.now() < deadline) await sleep(100);
  for (const s of ours) if (alive(s.pid!)) process.kill(s.pid!, 'SIGKILL');
  for (const s of ours) if (s.dir) rmSync(s.dir, { recursive: true, force: true });
  rmSync(stateFile, { force: true });
}
