/**
 * The package as a user gets it: `npm pack`, installed into fresh projects with
 * the README's own install commands, and every example block of README.md and
 * internal/protocol/PROTOCOL.md extracted and run (programs against a hub
 * started from the installed package's binaries, the browser example bundled
 * with the README's command and loaded in Chromium, the protocol transcript
 * replayed against a gateway), plus type-checks with each module resolution
 * and the package's shape. Needs `make build` (it packs dist/).
 */
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { connect as netConnect } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { MongoClient } from 'mongodb';
import { chromium, type Browser } from 'playwright-core';
import { createClient } from '../internal/sdk/index.js';
import { testCapabilities } from './harness/capabilities.js';
import { freshDbName, testUrl } from './harness/db.js';
import { TEST_SECRET, rootToken, testToken } from './harness/hub.js';
import { readDocBlocks, where, type DocBlock } from './harness/markdown.js';
import { eventually, startScript, type BinaryProcess } from './harness/process.js';
import { freePort } from './harness/server.js';
import { TestClient } from './harness/ws-client.js';

const ROOT = process.cwd();
const DOCS = ['README.md', 'internal/protocol/PROTOCOL.md'];
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
/** The databases the README's examples name (the hub reads `shop`; the consumer owns `billing`). */
const EXAMPLE_DBS = ['shop', 'billing'];
/** Databases of hubs started for one test, dropped at the end. */
const extraDbs: string[] = [];
const rootPkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
  devDependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
};

interface Ran {
  code: number | string;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (bounded), capturing its output. */
function run(cmd: string, args: string[], options: { cwd: string; env?: Record<string, string>; timeoutMs?: number }): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => void (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => void (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal ?? -1, stdout, stderr });
    });
  });
}

async function ok(cmd: string, args: string[], options: { cwd: string; env?: Record<string, string>; timeoutMs?: number }): Promise<Ran> {
  const r = await run(cmd, args, options);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

const NPM_FLAGS = ['--prefer-offline', '--no-audit', '--no-fund', '--no-package-lock', '--loglevel=error'];

/** Files (relative, posix) under `dir`, recursively. */
function filesUnder(dir: string, base = ''): string[] {
  return readdirSync(join(dir, base), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(dir, posix.join(base, e.name)) : [posix.join(base, e.name)],
  );
}

/** Bytes of every file under `dir` (apparent size, like `du -sb`). */
function bytesUnder(dir: string): number {
  return filesUnder(dir).reduce((sum, f) => sum + statSync(join(dir, f)).size, 0);
}

/** Top-level packages in a node_modules folder. */
function packagesIn(nodeModules: string): string[] {
  return readdirSync(nodeModules)
    .filter((n) => !n.startsWith('.'))
    .flatMap((n) => (n.startsWith('@') ? readdirSync(join(nodeModules, n)).map((m) => `${n}/${m}`) : [n]))
    .filter((n) => existsSync(join(nodeModules, n, 'package.json')));
}

const docs = DOCS.map((f) => readDocBlocks(f));
const blocks: DocBlock[] = docs.flatMap((d) => d.blocks);
const named = (kind: DocBlock['kind'], name: string): DocBlock => {
  const b = blocks.find((x) => x.kind === kind && x.name === name);
  if (!b) throw new Error(`no '${kind} ${name}' block in ${DOCS.join(', ')}`);
  return b;
};

let work: string;
let tarball: string;
let packed: Set<string>;
let appDir: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'outbox-hub-package-'));
  const [info] = JSON.parse(
    (await ok('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: ROOT })).stdout,
  ) as Array<{
    filename: string;
    files: Array<{ path: string }>;
  }>;
  tarball = join(work, info!.filename);
  packed = new Set(info!.files.map((f) => f.path));
  // Each install block in its own fresh project, run as written with the tarball standing in for the registry's copy.
  for (const b of blocks.filter((x) => x.kind === 'install')) {
    const dir = join(work, b.name);
    mkdirSync(dir);
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `example-${b.name}`, private: true, type: 'module' }));
    for (const line of b.code.split('\n').map((l) => l.replace(/#.*/, '').trim())) {
      if (line === '') continue;
      const m = /^npm install ((?:[@\w./-]+\s*)+)$/.exec(line);
      if (!m) throw new Error(`${where(b)}: not an 'npm install' line: ${line}`);
      const args = (m[1] ?? '').trim().split(/\s+/);
      await ok('npm', ['install', ...NPM_FLAGS, ...args.map((a) => (a === 'outbox-hub' ? tarball : a))], { cwd: dir, timeoutMs: 180_000 });
    }
  }
  appDir = join(work, 'app');
  // The tools a TypeScript user of the examples has (same versions as this repository).
  const tools = ['typescript', 'esbuild', '@types/node'].map((n) => `${n}@${rootPkg.devDependencies[n]}`);
  await ok('npm', ['install', '--save-dev', ...NPM_FLAGS, ...tools], { cwd: appDir, timeoutMs: 180_000 });
  for (const b of blocks.filter((x) => x.kind === 'run' || x.kind === 'browser')) writeFileSync(join(appDir, `${b.name}.ts`), b.code);
}, 400_000);

afterAll(() => {
  if (work && !process.env['KEEP_PACKAGE_TEST']) rmSync(work, { recursive: true, force: true });
});

describe('documentation blocks', () => {
  it('carry a test marker each, so no example goes untested silently', () => {
    expect(docs.flatMap((d) => d.problems).map((p) => `${p.file}:${p.line}: ${p.problem}`)).toEqual([]);
    const keys = blocks.filter((b) => b.name !== '').map((b) => `${b.kind} ${b.name}`);
    expect(keys).toEqual([...new Set(keys)]);
    const browser = blocks.filter((b) => b.kind === 'browser').map((b) => b.name);
    expect(blocks.filter((b) => b.kind === 'bundle').map((b) => b.name)).toEqual(browser);
    for (const b of blocks.filter((x) => x.kind === 'run' || x.kind === 'browser')) expect([where(b), b.lang]).toEqual([where(b), 'ts']);
    // The examples this suite checks beyond "exits 0" exist.
    for (const name of ['app-tx', 'app-plain', 'sdk-example', 'consumer-example']) expect(named('run', name).kind).toBe('run');
    expect(named('install', 'app').kind).toBe('install');
    expect(named('install', 'sdk-only').kind).toBe('install');
  });
});

describe('package shape', () => {
  it('ships the browser build, LICENSE, types for every entry and sources for every source map', () => {
    const pkg = JSON.parse(readFileSync(join(appDir, 'node_modules/outbox-hub/package.json'), 'utf8')) as {
      main: string;
      types: string;
      exports: Record<string, string | Record<string, string>>;
      typesVersions: Record<string, Record<string, string[]>>;
      dependencies: Record<string, string>;
      peerDependencies: Record<string, string>;
      peerDependenciesMeta: Record<string, { optional?: boolean }>;
    };
    const rel = (p: string): string => posix.normalize(p.replace(/^\.\//, ''));
    for (const f of ['LICENSE', 'README.md', 'package.json', 'dist/sdk/outbox-hub-sdk.min.js', 'internal/protocol/PROTOCOL.md']) {
      expect([f, packed.has(f)]).toEqual([f, true]);
    }
    expect(readFileSync(join(appDir, 'node_modules/outbox-hub/LICENSE'), 'utf8')).toMatch(/Apache License\s+Version 2\.0/);
    const targets = [
      pkg.main,
      pkg.types,
      ...Object.values(pkg.exports).flatMap((e) => (typeof e === 'string' ? [e] : Object.values(e))),
      ...Object.values(pkg.typesVersions['*'] ?? {}).flat(),
    ];
    for (const t of targets) expect([t, packed.has(rel(t))]).toEqual([t, true]);
    expect((pkg.exports['./sdk'] as Record<string, string>)['browser']).toBe('./dist/sdk/outbox-hub-sdk.min.js');
    expect(Object.keys(pkg.typesVersions['*'] ?? {}).sort()).toEqual(['consumer', 'sdk']);

    // No test code, and every source map and every map reference resolves inside the package.
    expect([...packed].filter((f) => /(^|\/)test\/|\.test\.ts$|^bench\//.test(f))).toEqual([]);
    const dangling: string[] = [];
    for (const f of packed) {
      const abs = join(appDir, 'node_modules/outbox-hub', f);
      if (f.endsWith('.js')) {
        const ref = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(readFileSync(abs, 'utf8'))?.[1];
        if (ref && !packed.has(posix.join(posix.dirname(f), ref))) dangling.push(`${f} -> ${ref}`);
      }
      if (f.endsWith('.map')) {
        const map = JSON.parse(readFileSync(abs, 'utf8')) as { sources: string[]; sourceRoot?: string };
        for (const s of map.sources) {
          const target = posix.normalize(posix.join(posix.dirname(f), map.sourceRoot ?? '', s));
          if (!packed.has(target)) dangling.push(`${f} -> ${s}`);
        }
      }
    }
    expect(dangling).toEqual([]);
    expect([...packed].filter((f) => f.endsWith('.map')).length).toBeGreaterThan(10);

    // mongodb and the Kubernetes client are optional peers, never (transitive) dependencies.
    expect(pkg.dependencies['mongodb']).toBeUndefined();
    expect(pkg.dependencies['@kubernetes/client-node']).toBeUndefined();
    expect(pkg.peerDependencies['mongodb']).toMatch(/^\^7\./);
    expect(pkg.peerDependencies['@kubernetes/client-node']).toMatch(/^1\.4\./);
    expect(pkg.peerDependenciesMeta['mongodb']?.optional).toBe(true);
    expect(pkg.peerDependenciesMeta['@kubernetes/client-node']?.optional).toBe(true);
    // The image needs both: the Dockerfile puts them back after pruning to production dependencies.
    expect(readFileSync('Dockerfile', 'utf8')).toMatch(
      /npm install --omit=dev --save-prod[^\n]*\\\n[^\n]*"mongodb", "@kubernetes\/client-node"/,
    );
  });

  it('installs for the SDK alone without mongodb or the Kubernetes client, at the size the README states', () => {
    const nm = join(work, 'sdk-only', 'node_modules');
    const pkgs = packagesIn(nm);
    expect(pkgs).toContain('outbox-hub');
    expect(pkgs).toContain('ws');
    expect(pkgs).not.toContain('mongodb');
    expect(pkgs).not.toContain('@kubernetes/client-node');
    const bytes = bytesUnder(nm);
    const readme = readFileSync('README.md', 'utf8');
    const claim = /\*\*That SDK-only install is (\d+) packages, ([\d.]+) MB\*\*/.exec(readme);
    expect(claim).not.toBeNull();
    const mb = bytes / 1e6;
    process.stderr.write(`\n  SDK-only install: ${pkgs.length} packages, ${mb.toFixed(1)} MB (README: ${claim?.[1]}, ${claim?.[2]} MB)\n`);
    // Registry updates of transitive dependencies move these a little; a stale claim moves them a lot.
    expect(mb).toBeGreaterThan(Number(claim?.[2]) * 0.8);
    expect(mb).toBeLessThan(Number(claim?.[2]) * 1.2);
    expect(Math.abs(pkgs.length - Number(claim?.[1]))).toBeLessThanOrEqual(5);
  });

  it('installs the outbox-hub command even with the SDK alone: it runs without mongodb, and config check names what it needs', async () => {
    const pkg = JSON.parse(readFileSync(join(appDir, 'node_modules/outbox-hub/package.json'), 'utf8')) as { bin?: Record<string, string> };
    expect(pkg.bin).toEqual({ 'outbox-hub': './dist/cmd/cli/main.js' });
    expect(packed.has('dist/cmd/cli/main.js')).toBe(true);
    const dir = join(work, 'sdk-only');
    // Run as the shell runs it: through npm's link and the file's own #! line.
    const bin = join(dir, 'node_modules/.bin/outbox-hub');
    const help = await run(bin, ['--help'], { cwd: dir });
    expect([help.code, help.stderr]).toEqual([0, '']);
    expect(help.stdout).toMatch(/outbox-hub status/);
    const token = await run(bin, ['token', '--secret', TEST_SECRET, '--json'], { cwd: dir });
    expect([token.code, token.stderr]).toEqual([0, '']);
    const check = await run(bin, ['config', 'check', 'drainer'], { cwd: dir, env: { MONGO_URL: 'mongodb://h/db' } });
    expect(check.code).toBe(1);
    expect(check.stderr).toMatch(/config check needs what the drainer needs: .*mongodb.* \(npm install mongodb@7 beside outbox-hub\)/);
  });

  it.each([
    ['node16', { module: 'node16', moduleResolution: 'node16' }],
    ['nodenext', { module: 'nodenext', moduleResolution: 'nodenext' }],
    ['bundler', { module: 'esnext', moduleResolution: 'bundler' }],
    ['node10', { module: 'esnext', moduleResolution: 'node10' }],
  ])('type-checks every TypeScript example against the package with %s resolution', async (name, options) => {
    const files = blocks.filter((b) => b.kind === 'run' || b.kind === 'browser').map((b) => `${b.name}.ts`);
    const config = {
      compilerOptions: {
        ...options,
        target: 'es2022',
        lib: ['es2022', 'dom'],
        types: ['node'],
        strict: true,
        skipLibCheck: false,
        noEmit: true,
      },
      files,
    };
    writeFileSync(join(appDir, `tsconfig.${name}.json`), JSON.stringify(config));
    const r = await run(join(appDir, 'node_modules/.bin/tsc'), ['-p', `tsconfig.${name}.json`], { cwd: appDir });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('stops a binary started with LEASE_BACKEND=kubernetes without the Kubernetes client, naming the package', async () => {
    const db = freshDbName('kube');
    const p = startScript(
      join(appDir, 'node_modules/outbox-hub/dist/cmd/drainer/main.js'),
      { MONGO_URL: testUrl(), MONGO_DB: db, METRICS_HOST: '127.0.0.1', METRICS_PORT: '0', LEASE_BACKEND: 'kubernetes' },
      { cwd: appDir },
    );
    try {
      expect(await p.exited).toBe(1);
      expect(JSON.stringify(p.logs)).toMatch(/BACKEND_UNAVAILABLE.*npm install @kubernetes\/client-node@1\.4\.0/);
    } finally {
      const client = await new MongoClient(testUrl()).connect();
      await client.db(db).dropDatabase();
      await client.close();
    }
  });
});

describe('examples against a hub started from the installed package', () => {
  const procs: BinaryProcess[] = [];
  let mongo: MongoClient;
  let gatewayPort: number;
  let env: Record<string, string>;
  let browser: Browser | undefined;

  async function startHubProcesses(db: string, extra: Record<string, string> = {}): Promise<number> {
    const port = await freePort();
    const common = {
      MONGO_URL: testUrl(),
      MONGO_DB: db,
      METRICS_HOST: '127.0.0.1',
      METRICS_PORT: '0',
      POLL_MAX: '50ms',
      TAIL_POLL_MAX: '50ms',
      LEASE_TTL: '3s',
      GROUP_LEASE_TTL: '3s',
      ...extra,
    };
    const bin = (name: string): string => join(appDir, 'node_modules/outbox-hub/dist/cmd', name, 'main.js');
    const drainer = startScript(bin('drainer'), common, { cwd: appDir });
    const gateway = startScript(
      bin('gateway'),
      { ...common, GATEWAY_HOST: '127.0.0.1', GATEWAY_PORT: String(port), JWT_SECRET: TEST_SECRET },
      { cwd: appDir },
    );
    procs.push(drainer, gateway);
    await gateway.waitForLog((l) => l.msg === 'gateway listening');
    await drainer.waitForLog((l) => l.msg === 'partition claimed');
    return port;
  }

  beforeAll(async () => {
    mongo = await new MongoClient(testUrl()).connect();
    for (const db of EXAMPLE_DBS) await mongo.db(db).dropDatabase();
    // The README tells users to run the hub with MONGO_DB=shop, next to the application's data.
    // process.state is compacted (the README's snapshot example reads it), promptly.
    gatewayPort = await startHubProcesses('shop', {
      RETENTION: JSON.stringify({ topics: [{ match: 'process.state', compact: true }] }),
      RETENTION_INTERVAL: '500ms',
    });
    env = { MONGO_URL: testUrl(), HUB_URL: `ws://127.0.0.1:${gatewayPort}/ws`, HUB_TOKEN: await rootToken(3600) };
    // Compiled once, as the user's build would; the type-check tests above cover the other resolutions.
    writeFileSync(
      join(appDir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { module: 'nodenext', target: 'es2022', lib: ['es2022', 'dom'], types: ['node'], strict: true, outDir: 'out' },
        files: blocks.filter((b) => b.kind === 'run').map((b) => `${b.name}.ts`),
      }),
    );
    await ok(join(appDir, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], { cwd: appDir });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    for (const p of procs) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => p.exited));
    for (const db of [...EXAMPLE_DBS, ...extraDbs]) await mongo?.db(db).dropDatabase();
    await mongo?.close();
  });

  it('runs the application, SDK and consumer examples: every message written reaches its consumers', async () => {
    const caps = testCapabilities();
    const outputs = new Map<string, Ran>();
    const background = new Map<string, BinaryProcess>();
    for (const b of blocks.filter((x) => x.kind === 'run')) {
      const script = join(appDir, 'out', `${b.name}.js`);
      if (b.flags.has('background')) {
        background.set(b.name, startScript(script, env, { cwd: appDir }));
        continue;
      }
      const r = await run(process.execPath, [script], { cwd: appDir, env, timeoutMs: 60_000 });
      outputs.set(b.name, r);
      const need = [...b.flags].find((f) => f.startsWith('needs='))?.slice('needs='.length);
      if (need === 'transactions' && !caps.transactions) {
        // The README says this example needs transactions; on this server it must fail, not pass by luck.
        const reason = r.stderr.split('\n').find((l) => /^\w*Error: /.test(l.trim())) ?? r.stderr;
        process.stderr.write(
          `\n  ${where(b)}: fails without transactions (${caps.flavor} ${caps.version}), as the README says: ${reason}\n`,
        );
        expect([where(b), r.code]).not.toEqual([where(b), 0]);
        if (caps.flavor === 'ferretdb') expect(r.stderr).toMatch(/unknown field "autocommit"/);
        continue;
      }
      expect([where(b), r.code, r.stderr]).toEqual([where(b), 0, '']);
    }

    const orders = caps.transactions ? ['o-1001', 'o-1002'] : ['o-1002'];
    // The application examples' messages were published (the hub reads the database they wrote to).
    await eventually(
      async () => (await mongo.db('shop').collection('events').countDocuments({ topic: 'orders.created' })) === orders.length,
      20_000,
      'the application examples’ messages in the event log',
    );
    const sdk = outputs.get('sdk-example')?.stdout ?? '';
    expect(sdk).toMatch(/^live: orders\.paid \{ orderId: 'o-1002', amount: 4 \}$/m);
    // The mailer group starts at the beginning of the log and stops at the event it published (same key, so after the order).
    expect(sdk).toMatch(/^mailer: orders\.created \{"_id":"o-1002",.*\(delivery 1\)$/m);
    expect(sdk).toMatch(/^mailer: orders\.paid \{"orderId":"o-1002","amount":4\} \(delivery 1\)$/m);

    // The consumer invoices each order once, then drains and exits on SIGTERM.
    const consumer = background.get('consumer-example');
    expect(consumer).toBeDefined();
    await eventually(
      async () => (await mongo.db('billing').collection('invoices').countDocuments()) === orders.length,
      20_000,
      'an invoice per order',
    );
    for (const o of orders) await consumer!.waitForLog((l) => l.msg === `invoiced ${o}`);
    consumer!.kill('SIGTERM');
    expect(await Promise.race([consumer!.exited, new Promise((r) => setTimeout(() => r('still running'), 15_000))])).toBe(0);
    expect(consumer!.logs.filter((l) => l.level === 'raw' && !String(l.msg).startsWith('invoiced '))).toEqual([]);
  }, 180_000);

  it('bundles the browser example with the README command and runs it in Chromium against the gateway', async () => {
    const page = named('browser', 'page');
    for (const line of named('bundle', 'page')
      .code.split('\n')
      .filter((l) => l.trim() !== '')) {
      await ok('sh', ['-c', line], { cwd: appDir });
    }
    const bundle = readFileSync(join(appDir, `${page.name}.js`), 'utf8');
    // The package's browser build was picked (no Node-only code, no `ws`).
    expect(bundle).not.toMatch(/\brequire\(|from\s*["']ws["']|import\(["']ws["']\)/);
    // A guard on size creep: 18.2 KB with the SDK's causation and trace-context code (the
    // prebuilt SDK, minified, plus this example unminified), 2026-12-05.
    expect(Buffer.byteLength(bundle)).toBeLessThan(20 * 1024);

    const token = await rootToken(600);
    const server: Server = createServer((req, res) => {
      if (req.url === '/token') return void res.writeHead(200, { 'content-type': 'text/plain' }).end(token);
      if (req.url === `/${page.name}.js`) return void res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
      res
        .writeHead(200, { 'content-type': 'text/html' })
        .end(`<!doctype html><title>example</title><ul id="events"></ul><script type="module" src="/${page.name}.js"></script>`);
    });
    // The page reaches the gateway on its own origin, as behind one ingress: /ws is passed through.
    server.on('upgrade', (req, socket, head) => {
      const upstream = netConnect(gatewayPort, '127.0.0.1', () => {
        const headers: string[] = [];
        for (let i = 0; i < req.rawHeaders.length; i += 2) headers.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
        upstream.write(`${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n`);
        upstream.write(head);
        upstream.pipe(socket).pipe(upstream);
      });
      upstream.on('error', () => socket.destroy());
      socket.on('error', () => upstream.destroy());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    const tab = await browser.newPage();
    const errors: string[] = [];
    tab.on('pageerror', (e) => void errors.push(String(e)));
    const publisher = createClient<{ 'orders.created': { _id: string } }>({ url: env['HUB_URL']!, getToken: () => env['HUB_TOKEN']! });
    try {
      await tab.goto(`http://127.0.0.1:${port}/`);
      // The example subscribes live; publish until it has seen one (it may not be subscribed yet at first).
      await eventually(
        async () => {
          await publisher.publish('orders.created', { _id: 'o-browser' }, { key: 'o-browser' });
          return (await tab.locator('#events li').count()) > 0;
        },
        20_000,
        'an event on the page',
      );
      expect(await tab.locator('#events li').first().textContent()).toBe('orders.created {"_id":"o-browser"}');
      mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true });
      await tab.screenshot({ path: join(ROOT, 'test-artifacts', 'readme-browser-example.png') });
      expect(errors).toEqual([]);
    } finally {
      await publisher.close();
      await tab.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  }, 90_000);

  it('replays the protocol example session against a gateway of the installed package', async () => {
    const b = blocks.find((x) => x.kind === 'session');
    expect(b).toBeDefined();
    // A hub of its own, with the default 16 partitions.
    const db = freshDbName('session');
    extraDbs.push(db);
    const port = await startHubProcesses(db, { OUTBOX_PARTITIONS: '16' });
    // The transcript shows a log with history (16 earlier events in partition 8, so seq 17):
    // publish them first and wait until they are in the log, so the new group starts after them.
    const seeder = await TestClient.authed(port, await testToken({ scopes: 'publish:** subscribe:**' }, { sub: 'seeder' }));
    try {
      await seeder.request({ op: 'SUBSCRIBE', sub: 'h', topic: 'orders.history' });
      for (let i = 0; i < 16; i++) await seeder.request({ op: 'PUBLISH', topic: 'orders.history', key: 'o-1', payload: { i } });
      await seeder.nEvents(16, 'h', 30_000);
    } finally {
      seeder.close();
    }
    const client = await TestClient.connect(port);
    try {
      const token = await testToken({ scopes: 'publish:** subscribe:**' }, { sub: 'svc-billing' });
      const expected: Array<Record<string, unknown>> = [];
      for (const line of b!.code.split('\n').filter((l) => l.trim() !== '')) {
        const m = /^([<>]) (.*)$/.exec(line);
        if (!m) throw new Error(`${where(b!)}: not a '>' or '<' line: ${line}`);
        // `...` elides the rest of an object, or the rest of a string value.
        const frame = JSON.parse((m[2] ?? '').replace(/,\.\.\.}/g, '}').replace(/"eyJ\.\.\."/, JSON.stringify(token))) as Record<
          string,
          unknown
        >;
        if (m[1] === '>') {
          for (const want of expected.splice(0)) await expectFrame(client, want);
          client.ws.send(JSON.stringify(frame));
        } else expected.push(frame);
      }
      for (const want of expected) await expectFrame(client, want);
    } finally {
      client.close();
    }
  }, 60_000);

  it("runs the README's command-line session against the hub and an ops of the installed package", async () => {
    const b = blocks.find((x) => x.kind === 'cli');
    expect(b).toBeDefined();
    const opsPort = await freePort();
    const admin = 'readme-admin-token-0123456789';
    const ops = startScript(
      join(appDir, 'node_modules/outbox-hub/dist/cmd/ops/main.js'),
      {
        MONGO_URL: testUrl(),
        MONGO_DB: 'shop',
        METRICS_HOST: '127.0.0.1',
        OPS_HOST: '127.0.0.1',
        OPS_PORT: String(opsPort),
        OPS_ADMIN_TOKEN: admin,
        OPS_SAMPLE_INTERVAL: '500ms',
      },
      { cwd: appDir },
    );
    procs.push(ops);
    await ops.waitForLog((l) => l.msg === 'ops listening');
    await eventually(
      async () => (await fetch(`http://127.0.0.1:${opsPort}/readyz`, { headers: { connection: 'close' } })).status === 200,
      20_000,
      'ops ready',
    );
    // The README names the port-forwarded defaults; here they are this test's processes.
    const script = b!.code.replaceAll('localhost:8081', `127.0.0.1:${opsPort}`).replaceAll('localhost:8080', `127.0.0.1:${gatewayPort}`);
    const { FORCE_COLOR: _force, ...rest } = process.env;
    const r = await run('sh', ['-e', '-x', '-c', script], {
      cwd: appDir,
      env: { ...(rest as Record<string, string>), OPS_ADMIN_TOKEN: admin, JWT_SECRET: TEST_SECRET },
      timeoutMs: 120_000,
    });
    expect([where(b!), r.code, r.code === 0 ? '' : `${r.stdout}\n${r.stderr}`]).toEqual([where(b!), 0, '']);
    // What the session shows: a healthy hub, the event it published, the events of the last hour.
    expect(r.stdout).toMatch(/^(✔ all healthy|✖ .+)$/m);
    expect(r.stdout).toMatch(/^published orders\.created key o-1003 → event \S+$/m);
    expect(r.stdout.split('\n').filter((l) => /^\d\d:\d\d:\d\d\.\d{3} orders\.\w+ /.test(l)).length).toBe(3);
    expect(readFileSync(join(appDir, 'orders.ndjson'), 'utf8')).toMatch(/"key":"o-1003"/);
  }, 180_000);

  it.each(blocks.filter((x) => x.kind === 'frames').map((b) => [where(b), b]))(
    'shows server frames that match the protocol (%s)',
    (_where, b) => {
      for (const line of b.code.split('\n').filter((l) => l.trim() !== '')) {
        const f = JSON.parse(line) as Record<string, unknown>;
        if (f['op'] === 'OK') expect(typeof f['id']).toBe('string');
        else if (f['op'] === 'ERR') expect([typeof f['code'], typeof f['message']]).toEqual(['string', 'string']);
        else if (f['op'] === 'EVENT') {
          // Every event has these; causes, tags and trace context only when it carries them.
          const optional = new Set(['causedBy', 'tags', 'traceparent', 'tracestate']);
          expect(
            Object.keys(f['event'] as object)
              .filter((k) => !optional.has(k))
              .sort(),
          ).toEqual(['createdAt', 'headers', 'id', 'key', 'partition', 'payload', 'publishedAt', 'seq', 'topic'].sort());
        } else throw new Error(`${where(b)}: unknown op in ${line}`);
      }
    },
  );
});

/** Waits for the frame `want` describes: same op and id (or sub for events); other fields equal, `"x..."` a prefix. */
async function expectFrame(client: TestClient, want: Record<string, unknown>): Promise<void> {
  const got = await client.waitFor(
    (f) => f.op === want['op'] && (f.op === 'EVENT' ? f.sub === want['sub'] : 'id' in f && f.id === want['id']),
    15_000,
  );
  expect(matches(got, want)).toEqual([]);
}

function matches(got: unknown, want: unknown, path = '$'): string[] {
  if (typeof want === 'string' && want.endsWith('...')) {
    return typeof got === 'string' && got.startsWith(want.slice(0, -3)) ? [] : [`${path}: ${JSON.stringify(got)} !~ ${want}`];
  }
  if (typeof want === 'string' && /^\d{4}-\d\d-\d\dT/.test(want)) {
    return typeof got === 'string' && !Number.isNaN(Date.parse(got)) ? [] : [`${path}: ${JSON.stringify(got)} is not a time`];
  }
  if (want !== null && typeof want === 'object') {
    if (got === null || typeof got !== 'object') return [`${path}: ${JSON.stringify(got)} is not an object`];
    return Object.entries(want).flatMap(([k, v]) => matches((got as Record<string, unknown>)[k], v, `${path}.${k}`));
  }
  return got === want ? [] : [`${path}: ${JSON.stringify(got)} !== ${JSON.stringify(want)}`];
}
