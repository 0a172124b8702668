import { readFileSync, rmSync } from 'node:fs';

/** Stops the FerretDB the global setup started (containers are reaped by testcontainers). */
export default async function globalTeardown(): Promise<void> {
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
