/**
 * The image's contents, smoke-tested without any container engine (the real image,
 * built with podman, is tested in image.podman.test.ts): the Dockerfile is read, the
 * files its final stage copies are laid out in a temporary directory exactly as
 * listed (the build stage's outputs reproduced: `npm ci --omit=dev` for its
 * `npm ci` + `npm prune --omit=dev`, and `make build`'s dist for its tsc and
 * esbuild steps), made read-only, and each binary is run from there the way the
 * image runs it: `node dist/cmd/<binary>/main.js` in the image's WORKDIR, with
 * the image's ENV, as its USER (UID 10001). Each must start, answer its health
 * endpoint and exit 0 on SIGTERM.
 *
 * Not covered here (image.podman.test.ts covers them): the base image, tini as PID 1, the real build.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { useTestDb } from './harness/db.js';
import { eventually } from './harness/process.js';
import { freePort } from './harness/server.js';

/** Optional peers of the npm package that the image installs again for the binaries. */
const IMAGE_PEERS = [
  'mongodb',
  '@kubernetes/client-node',
  '@opentelemetry/sdk-trace',
  '@opentelemetry/exporter-trace-otlp-http',
  '@opentelemetry/resources',
  '@opentelemetry/context-async-hooks',
];

const execFileAsync = promisify(execFile);
const ROOT = resolve('.');

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  from: string;
  name?: string;
  steps: Instruction[];
}

/** The Dockerfile's stages (continuation lines joined, comments dropped). */
function parseDockerfile(text: string): Stage[] {
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  const stages: Stage[] = [];
  for (const raw of lines) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [, op = '', args = ''] = /^(\S+)\s+(.*)$/.exec(line) ?? [];
    if (op.toUpperCase() === 'FROM') {
      const [, from = '', name] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args) ?? [];
      stages.push({ from, ...(name ? { name } : {}), steps: [] });
    } else stages.at(-1)?.steps.push({ op: op.toUpperCase(), args });
  }
  return stages;
}

const dockerfile = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const build = dockerfile.find((s) => s.name === 'build') as Stage;
const final = dockerfile.at(-1) as Stage;
const step = (s: Stage, op: string): Instruction[] => s.steps.filter((i) => i.op === op);
const workdir = (s: Stage): string => step(s, 'WORKDIR').at(-1)?.args ?? '/';

const t = useTestDb('image');
const running = new Set<ChildProcess>();
let app: string;
let scratch: string;

afterEach(() => {
  for (const p of running) p.kill('SIGKILL');
  running.clear();
});
// Root (which this test must be, to run as UID 10001) removes read-only trees as they are.
afterAll(() => scratch && rmSync(scratch, { recursive: true, force: true }));

/** Every path under `dir`. */
function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    out.push(p, ...(e.isDirectory() ? walk(p) : []));
  }
  return out;
}

// Switching to the image's UID needs root (as CI and the development machine run).
const root = process.getuid?.() === 0;
const itAsRoot = root ? it : it.skip;
if (!root) process.stderr.write('\n  SKIPPED (not root: cannot run the binaries as UID 10001): image smoke runs\n');

describe('image contents (Dockerfile final stage, laid out without Docker)', () => {
  it('builds from the binaries and their packages only: no tests, harness or benchmarks', async () => {
    const copied = step(build, 'COPY').flatMap((c) => c.args.split(/\s+/).slice(0, -1));
    expect(copied.filter((p) => /^(test|bench)\b|\.test\./.test(p))).toEqual([]);
    const tsc = step(build, 'RUN').find((r) => r.args.includes('tsc -p'));
    const project = /tsc -p (\S+)/.exec(tsc?.args ?? '')?.[1] as string;
    expect(copied).toContain(project);
    // The program that project compiles (following imports) holds no test or benchmark file.
    const { stdout } = await execFileAsync(join(ROOT, 'node_modules/.bin/tsc'), ['-p', project, '--listFilesOnly'], { cwd: ROOT });
    const own = stdout.split('\n').filter((f) => f.startsWith(ROOT) && !f.includes('/node_modules/'));
    expect(own.length).toBeGreaterThan(20);
    expect(own.filter((f) => !/^\/(cmd|internal)\//.test(f.slice(ROOT.length)) || f.endsWith('.test.ts'))).toEqual([]);
    expect(step(final, 'USER').at(-1)?.args).toBe('10001:10001');
    expect(step(final, 'ENV').map((e) => e.args)).toContain('NODE_ENV=production');
  });

  it('lays out exactly what the final stage copies, with production packages only', async () => {
    scratch = mkdtempSync(join(tmpdir(), 'outbox-hub-image-'));
    chmodSync(scratch, 0o755);
    app = join(scratch, 'app');
    const src = workdir(build);
    const runs = step(build, 'RUN').map((r) => r.args);
    expect(runs.some((r) => /\bnpm ci\b/.test(r))).toBe(true);
    expect(runs.some((r) => r.includes('npm prune --omit=dev'))).toBe(true);
    let prodModules: string | undefined;
    for (const c of step(final, 'COPY')) {
      const [from, source, dest] = c.args.split(/\s+/) as [string, string, string];
      expect(from).toBe('--from=build');
      const rel = source.slice(src.length + 1);
      const target = resolve(app, dest.endsWith('/') || dest === './' ? join(dest, rel.split('/').at(-1) as string) : dest);
      if (rel === 'node_modules') {
        // The build stage's `npm ci` then `npm prune --omit=dev`, in one step.
        prodModules = join(scratch, 'build');
        cpSync(join(ROOT, 'package.json'), join(prodModules, 'package.json'));
        cpSync(join(ROOT, 'package-lock.json'), join(prodModules, 'package-lock.json'));
        await execFileAsync('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: prodModules });
        // Then the image puts back the optional peers the binaries need, at the repository's pins.
        const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
        expect(runs.some((r) => r.includes('npm install --omit=dev --save-prod --save-exact'))).toBe(true);
        await execFileAsync(
          'npm',
          [
            'install',
            '--omit=dev',
            '--save-prod',
            '--save-exact',
            '--no-audit',
            '--no-fund',
            '--prefer-offline',
            ...IMAGE_PEERS.map((n) => `${n}@${pkg.devDependencies[n]}`),
          ],
          { cwd: prodModules },
        );
        cpSync(join(prodModules, 'node_modules'), target, { recursive: true, verbatimSymlinks: true });
      } else if (rel.startsWith('dist/')) {
        // The build stage's tsc and esbuild outputs, as `make build` produced them.
        expect(existsSync(join(ROOT, rel))).toBe(true);
        cpSync(join(ROOT, rel), target, { recursive: true });
      } else if (step(build, 'COPY').some((b) => b.args.split(/\s+/).slice(0, -1).includes(rel))) {
        cpSync(join(ROOT, rel), target, { recursive: true });
      } else throw new Error(`this test does not know how the build stage makes ${source}: teach it`);
    }
    if (prodModules) rmSync(prodModules, { recursive: true, force: true });

    const top = readdirSync(app).sort();
    expect(top).toEqual(['dist', 'node_modules', 'package.json']);
    expect(readdirSync(join(app, 'dist')).sort()).toEqual(['cmd', 'internal', 'sdk']);
    const files = walk(app).map((f) => f.slice(app.length + 1));
    expect(files.filter((f) => !f.startsWith('node_modules/') && /(^|\/)(test|bench)\/|\.test\.js$/.test(f))).toEqual([]);
    // Every package shipped is a production one by the lockfile (some, like @types/node, are both).
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean; dependencies?: Record<string, string> }>;
    };
    const shipped = readdirSync(join(app, 'node_modules'))
      .filter((d) => !d.startsWith('.'))
      .flatMap((d) => (d.startsWith('@') ? readdirSync(join(app, 'node_modules', d)).map((s) => `${d}/${s}`) : [d]));
    // ... apart from the optional peers the image installs again, and what they depend on.
    const peerClosure = new Set<string>();
    const visit = (name: string): void => {
      if (peerClosure.has(name)) return;
      peerClosure.add(name);
      for (const d of Object.keys(lock.packages[`node_modules/${name}`]?.dependencies ?? {})) visit(d);
    };
    IMAGE_PEERS.forEach(visit);
    expect(shipped.filter((d) => lock.packages[`node_modules/${d}`]?.dev === true && !peerClosure.has(d))).toEqual([]);
    expect(
      shipped.filter((d) => ['jest', 'ts-jest', 'typescript', 'esbuild', '@testcontainers/k3s', 'playwright-core'].includes(d)),
    ).toEqual([]);
    expect(shipped).toEqual(expect.arrayContaining(['@kubernetes/client-node', 'mongodb', 'ws', 'jose', 'express', 'prom-client']));
    for (const bin of ['drainer', 'gateway', 'ops', 'demo', 'cli']) expect(existsSync(join(app, 'dist/cmd', bin, 'main.js'))).toBe(true);

    // Read-only, as the chart runs it (readOnlyRootFilesystem) and as UID 10001 owns none of it.
    for (const f of walk(app)) chmodSync(f, statSync(f).isDirectory() ? 0o555 : 0o444);
    chmodSync(app, 0o555);
  }, 120_000);

  /** Runs `dist/cmd/<name>/main.js` from the laid-out image like its ENTRYPOINT, as UID 10001. */
  function run(name: string, env: Record<string, string>): { child: ChildProcess; output: string[] } {
    const imageEnv = Object.fromEntries(step(final, 'ENV').map((e) => e.args.split('=', 2) as [string, string]));
    const child = spawn(process.execPath, [`dist/cmd/${name}/main.js`], {
      cwd: app,
      uid: 10001,
      gid: 10001,
      // What a container has: PATH and HOME, the image's ENV, the pod's variables.
      env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/', ...imageEnv, LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(child);
    const output: string[] = [];
    child.stdout?.on('data', (d: Buffer) => output.push(d.toString()));
    child.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
    return { child, output };
  }

  async function status(url: string): Promise<number> {
    try {
      return (await fetch(url, { signal: AbortSignal.timeout(2_000) })).status;
    } catch {
      return 0;
    }
  }

  async function startsServesAndStops(name: string, env: Record<string, string>, health: string, extra: Record<string, number> = {}) {
    expect(app).toBeDefined();
    const { child, output } = run(name, env);
    const exited = new Promise<number | string>((r) => child.once('exit', (code, signal) => r(code ?? signal ?? -1)));
    try {
      await eventually(async () => child.exitCode === null && (await status(health)) === 200, 30_000, `${name} ${health}`);
    } catch (err) {
      throw new Error(`${String(err)}; exit ${String(child.exitCode)}; output: ${output.join('').slice(-2000)}`, { cause: err });
    }
    const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1];
    expect(uid).toBe('10001');
    expect(readFileSync(`/proc/${child.pid}/environ`, 'utf8').split('\0')).toContain('NODE_ENV=production');
    for (const [url, code] of Object.entries(extra)) expect({ url, status: await status(url) }).toEqual({ url, status: code });
    child.kill('SIGTERM');
    const ac = new AbortController();
    const code = await Promise.race([exited, sleep(20_000, 'still running 20 s after SIGTERM', { signal: ac.signal })]).finally(() =>
      ac.abort(),
    );
    expect({ name, code, output: code === 0 ? '' : output.join('').slice(-2000) }).toEqual({ name, code: 0, output: '' });
  }

  const common = () => ({ MONGO_URL: t.url, MONGO_DB: `${t.name}_img`, OUTBOX_PARTITIONS: '4' });

  itAsRoot(
    'drainer: starts, serves /readyz, stops on SIGTERM',
    async () => {
      const metrics = await freePort();
      await startsServesAndStops(
        'drainer',
        { ...common(), METRICS_HOST: '127.0.0.1', METRICS_PORT: String(metrics), MEMBER_ID: 'img-drainer' },
        `http://127.0.0.1:${metrics}/readyz`,
        { [`http://127.0.0.1:${metrics}/metrics`]: 200 },
      );
    },
    60_000,
  );

  itAsRoot(
    'gateway: starts, serves /readyz, stops on SIGTERM',
    async () => {
      const [port, metrics] = [await freePort(), await freePort()];
      await startsServesAndStops(
        'gateway',
        {
          ...common(),
          GATEWAY_HOST: '127.0.0.1',
          GATEWAY_PORT: String(port),
          METRICS_HOST: '127.0.0.1',
          METRICS_PORT: String(metrics),
          JWT_SECRET: 'image-smoke-secret-0123456789abcdef',
          MEMBER_ID: 'img-gateway',
        },
        `http://127.0.0.1:${metrics}/readyz`,
        // The WebSocket port answers plain HTTP with 426; metrics live on their own port.
        { [`http://127.0.0.1:${port}/ws`]: 426, [`http://127.0.0.1:${metrics}/metrics`]: 200 },
      );
    },
    60_000,
  );

  itAsRoot(
    'ops: starts, serves /readyz, stops on SIGTERM',
    async () => {
      const port = await freePort();
      await startsServesAndStops('ops', { ...common(), OPS_HOST: '127.0.0.1', OPS_PORT: String(port) }, `http://127.0.0.1:${port}/readyz`, {
        [`http://127.0.0.1:${port}/`]: 200,
        [`http://127.0.0.1:${port}/metrics`]: 200,
      });
    },
    60_000,
  );

  itAsRoot(
    'the outbox-hub command line: executable and on the PATH, runs from the image as UID 10001',
    () => {
      expect(app).toBeDefined();
      // The build stage makes it executable; the final stage links it onto the PATH, inside WORKDIR.
      expect(step(build, 'RUN').some((r) => r.args.includes('chmod +x dist/cmd/cli/main.js'))).toBe(true);
      expect(
        step(final, 'RUN').some((r) => r.args.includes(`ln -s ${join(workdir(final), 'dist/cmd/cli/main.js')} /usr/local/bin/outbox-hub`)),
      ).toBe(true);
      expect(readFileSync(join(app, 'dist/cmd/cli/main.js'), 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
      const imageEnv = Object.fromEntries(step(final, 'ENV').map((e) => e.args.split('=', 2) as [string, string]));
      const cli = (args: string[], env: Record<string, string> = {}) =>
        spawnSync(process.execPath, ['dist/cmd/cli/main.js', ...args], {
          cwd: app,
          uid: 10001,
          gid: 10001,
          env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/', ...imageEnv, ...env },
          encoding: 'utf8',
          timeout: 20_000,
        });
      const help = cli(['--help']);
      expect([help.status, help.stderr]).toEqual([0, '']);
      expect(help.stdout).toMatch(/outbox-hub status/);
      // The binaries' configuration loaders load from the production packages (the driver included).
      const check = cli(['config', 'check', 'ops', '--json'], { ...common(), OPS_ADMIN_TOKEN: 'image-admin-token-0123456789' });
      expect([check.status, check.stderr]).toEqual([0, '']);
      expect(JSON.parse(check.stdout)).toMatchObject({ binary: 'ops', valid: true, config: { adminToken: '***' } });
      const bad = cli(['config', 'check', 'drainer'], { MONGO_URL: 'nope' });
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(/invalid configuration: MONGO_URL/);
    },
    30_000,
  );

  itAsRoot(
    'demo: starts, serves its page and the SDK bundle, stops on SIGTERM',
    async () => {
      const port = await freePort();
      await startsServesAndStops(
        'demo',
        {
          ...common(),
          DEMO_HOST: '127.0.0.1',
          DEMO_PORT: String(port),
          GATEWAY_PUBLIC_URL: 'ws://127.0.0.1:1/ws',
          JWT_SECRET: 'image-smoke-secret-0123456789abcdef',
        },
        `http://127.0.0.1:${port}/healthz`,
        { [`http://127.0.0.1:${port}/`]: 200, [`http://127.0.0.1:${port}/sdk.js`]: 200 },
      );
    },
    60_000,
  );
});
