/**
 * The real image: the repository's Dockerfile built by podman (`make image`, scripts/build-image.sh:
 * a base made from Debian packages and the official Node binary, nothing pulled from a registry),
 * and each binary run from it as a container: its user, tini as PID 1, a configuration error
 * reported as one JSON line with exit code 2, a drainer that becomes ready against the test
 * database and stops with exit code 0 on `podman stop` (SIGTERM through tini), and the command
 * line on the PATH. Nothing of the build's CA bundle stays in the image.
 *
 * When the image could not be built (no podman, not root, no Debian mirror), the tests are
 * reported as skipped with the reason `make image` left in test-artifacts/image-build.log.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { useTestDb } from './harness/db.js';
import { eventually } from './harness/process.js';
import { freePort } from './harness/server.js';

const IMAGE = 'localhost/outbox-hub:dev';
const execFileAsync = promisify(execFile);
// podman's settings for this machine, written by scripts/build-image.sh (runc, ulimits).
const env = { ...process.env, CONTAINERS_CONF: resolve('.tools/image/containers.conf') };

function buildFailure(): string | undefined {
  const log = resolve('test-artifacts/image-build.log');
  if (spawnSync('podman', ['image', 'exists', IMAGE], { env }).status === 0) return undefined;
  const why = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').slice(-3).join(' / ') : 'make image did not run';
  return `${IMAGE} is not built (${why})`;
}
const missing = buildFailure();
if (missing) process.stderr.write(`\n  SKIPPED (${missing}): podman image tests\n`);
const describeImage = missing ? describe.skip : describe;

const t = useTestDb('image_podman');
const started: string[] = [];

async function podman(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync('podman', args, { env, timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

afterAll(async () => {
  for (const name of started) await podman('rm', '--force', '--time', '0', name);
});

describeImage('the image built from the Dockerfile (podman)', () => {
  it('runs as UID 10001 under tini, with no trace of the build stage’s CA bundle', async () => {
    const [config] = JSON.parse((await podman('image', 'inspect', IMAGE)).stdout) as Array<{
      Config: { User: string; Entrypoint: string[]; Env: string[] };
    }>;
    expect(config?.Config.User).toBe('10001:10001');
    expect(config?.Config.Entrypoint).toEqual(['/usr/bin/tini', '--', 'node']);
    expect(config?.Config.Env.filter((e) => e.startsWith('NODE_EXTRA_CA_CERTS'))).toEqual([]);
    const inside = await podman(
      'run',
      '--rm',
      IMAGE,
      '-e',
      'const fs = require("fs"); console.log(JSON.stringify({ uid: process.getuid(), pid1: fs.readFileSync("/proc/1/comm", "utf8").trim(), tests: fs.existsSync("/app/test") }))',
    );
    expect(inside.code).toBe(0);
    expect(JSON.parse(inside.stdout)).toEqual({ uid: 10001, pid1: 'tini', tests: false });
    // The host's bundle was mounted over the base's during the build only: the image keeps the base's.
    const bundle = async (image: string): Promise<string> =>
      (await podman('run', '--rm', '--entrypoint', 'cat', image, '/etc/ssl/certs/ca-certificates.crt')).stdout;
    const [mine, base] = await Promise.all([bundle(IMAGE), bundle('localhost/node:20.19-bookworm-slim')]);
    expect(mine.length).toBeGreaterThan(1000);
    expect(mine === base).toBe(true);
  }, 120_000);

  it.each(['drainer', 'gateway', 'ops'])(
    'reports a missing MONGO_URL of the %s as one JSON line and exits 2',
    async (binary) => {
      const r = await podman('run', '--rm', IMAGE, `dist/cmd/${binary}/main.js`);
      expect(r.code).toBe(2);
      const lines = `${r.stdout}${r.stderr}`.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0] as string)).toMatchObject({ msg: expect.stringMatching(/MONGO_URL/) as string });
    },
    120_000,
  );

  it('runs a drainer that becomes ready on the test database and exits 0 on podman stop', async () => {
    const port = await freePort();
    const name = `outbox-hub-test-${process.pid}-${Date.now()}`;
    started.push(name);
    const run = await podman(
      'run',
      '--detach',
      '--name',
      name,
      '--network=host',
      '--env',
      `MONGO_URL=${t.url}`,
      '--env',
      `MONGO_DB=${t.name}`,
      '--env',
      'METRICS_HOST=127.0.0.1',
      '--env',
      `METRICS_PORT=${port}`,
      IMAGE,
      'dist/cmd/drainer/main.js',
    );
    expect(run.code).toBe(0);
    await eventually(
      async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200,
      60_000,
      'the drainer in its container to be ready',
    );
    expect(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).toMatch(/^outbox_published_total/m);
    const stopping = Date.now();
    expect((await podman('stop', '--time', '20', name)).code).toBe(0);
    const stoppedIn = Date.now() - stopping;
    const state = JSON.parse((await podman('inspect', name, '--format', '{{json .State}}')).stdout) as { ExitCode: number };
    // SIGTERM reached node through tini, and the drainer left cleanly (not killed after the 20 s grace).
    expect(state.ExitCode).toBe(0);
    expect(stoppedIn).toBeLessThan(15_000);
    process.stderr.write(`\n  image: drainer ready, then stopped with exit 0 in ${stoppedIn} ms\n`);
  }, 180_000);

  it('puts the command line on the PATH', async () => {
    const r = await podman('run', '--rm', '--entrypoint', 'outbox-hub', IMAGE, '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/status/);
  }, 120_000);
});
