/**
 * The `outbox-hub` command line end to end, as a user types it: the built
 * binary (`node dist/cmd/cli/main.js ...`) against a drainer, a gateway and
 * ops running as processes, every command with human and `--json` output,
 * bad input with its message and exit code (unknown group, bad time, wrong
 * tokens), an idempotent requeue and replay, group resets (to a time, refused
 * while a member is connected, forced), shell completion through bash, and a
 * terminal session through a pseudo-terminal (`script` from util-linux) for
 * what only a terminal gets: colour, the banner and progress bars.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { partitionOf } from '../internal/outbox/index.js';
import { createClient, type HubClient } from '../internal/sdk/index.js';
import { useTestDb } from './harness/db.js';
import { TEST_SECRET, rootToken, testToken } from './harness/hub.js';
import { eventually, startBinary, type BinaryProcess } from './harness/process.js';
import { freePort } from './harness/server.js';

const t = useTestDb('cli');
const CLI = resolve('dist/cmd/cli/main.js');
const P = 4;
const ADMIN = 'cli-admin-token-0123456789';
const READ = 'cli-read-token-0123456789';
const procs: BinaryProcess[] = [];
const clients: HubClient[] = [];
let env: Record<string, string>;
let gatewayEnv: Record<string, string>;
let shim: string;

interface Ran {
  code: number | string;
  stdout: string;
  stderr: string;
}

/** This process's environment as a user's shell would have it: without the colour switches jest sets for its workers. */
function userEnv(): Record<string, string | undefined> {
  const { FORCE_COLOR: _force, NO_COLOR: _no, ...rest } = process.env;
  return rest;
}

/** Runs the command line to completion with the hub's URLs and tokens in its environment (as a user's shell has them). */
function cli(args: string[], options: { env?: Record<string, string>; input?: string; timeoutMs?: number } = {}): Promise<Ran> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...userEnv(), ...env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => void (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => void (stderr += d.toString()));
    child.stdin.end(options.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.once('error', fail);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      done({ code: code ?? signal ?? -1, stdout, stderr });
    });
  });
}

/** Runs it and expects exit 0; returns stdout. */
async function ok(args: string[], options: Parameters<typeof cli>[1] = {}): Promise<string> {
  const r = await cli(args, options);
  expect({ args: args.join(' '), code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({
    args: args.join(' '),
    code: 0,
    stderr: '',
  });
  return r.stdout;
}

const json = <T = Record<string, unknown>>(text: string): T => JSON.parse(text) as T;
const ndjson = <T = Record<string, unknown>>(text: string): T[] =>
  text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as T);

interface Ev {
  id: string;
  topic: string;
  key: string | null;
  partition: number;
  seq: number;
  payload: { n?: number };
  headers: Record<string, string>;
  publishedAt: string;
}

async function member(): Promise<HubClient> {
  const token = await rootToken(600);
  const c = createClient({
    url: env['OUTBOX_HUB_GATEWAY_URL']!,
    getToken: () => token,
    reconnect: { initialDelayMs: 100, maxDelayMs: 500 },
  });
  clients.push(c);
  await c.ready();
  return c;
}

/** Publishes through the CLI and returns the event id. */
async function publish(topic: string, payload: unknown, key: string): Promise<string> {
  return json<{ eventId: string }>(await ok(['publish', topic, JSON.stringify(payload), '--key', key, '--json'])).eventId;
}

/** Waits until the event is in the log (the drainer moved it), per the ops export. */
async function logged(ids: string[]): Promise<void> {
  await eventually(
    async () => (await t.db.collection('events').countDocuments({ _id: { $in: ids as never[] } })) === ids.length,
    20_000,
    `events ${ids.join(', ')} in the log`,
  );
}

beforeAll(async () => {
  const ports = { gateway: await freePort(), ops: await freePort() };
  const common = { MONGO_URL: t.url, MONGO_DB: t.name, OUTBOX_PARTITIONS: String(P), METRICS_HOST: '127.0.0.1', METRICS_PORT: '0' };
  gatewayEnv = {
    ...common,
    GATEWAY_HOST: '127.0.0.1',
    GATEWAY_PORT: String(ports.gateway),
    JWT_SECRET: TEST_SECRET,
    TAIL_POLL_MAX: '50ms',
    GROUP_LEASE_TTL: '2s',
    GROUP_LEASE_RENEW_INTERVAL: '500ms',
    CURSOR_FLUSH_INTERVAL: '50ms',
    MAX_DELIVERIES: '2',
    REDELIVERY_BASE: '50ms',
  };
  const drainer = startBinary('drainer', { ...common, POLL_MAX: '50ms', LEASE_TTL: '2s', LEASE_RENEW_INTERVAL: '500ms' });
  const gateway = startBinary('gateway', gatewayEnv);
  const ops = startBinary('ops', {
    ...common,
    OPS_HOST: '127.0.0.1',
    OPS_PORT: String(ports.ops),
    OPS_SAMPLE_INTERVAL: '300ms',
    OPS_ADMIN_TOKEN: ADMIN,
    OPS_READ_TOKEN: READ,
    OPS_REPAIR_MIN_AGE: '0s',
  });
  procs.push(drainer, gateway, ops);
  await Promise.all([
    gateway.waitForLog((l) => l.msg === 'gateway listening'),
    drainer.waitForLog((l) => l.msg === 'partition claimed'),
    ops.waitForLog((l) => l.msg === 'ops listening'),
  ]);
  await eventually(
    async () => (await fetch(`http://127.0.0.1:${ports.ops}/readyz`, { headers: { connection: 'close' } })).status === 200,
    20_000,
    'ops ready',
  );
  env = {
    OUTBOX_HUB_OPS_URL: `http://127.0.0.1:${ports.ops}`,
    OUTBOX_HUB_OPS_TOKEN: ADMIN,
    OUTBOX_HUB_GATEWAY_URL: `ws://127.0.0.1:${ports.gateway}/ws`,
    OUTBOX_HUB_TOKEN: await rootToken(3600),
  };
  // `outbox-hub` on the PATH, as `npm install -g` or the image makes it.
  shim = mkdtempSync(join(tmpdir(), 'outbox-hub-cli-'));
  writeFileSync(join(shim, 'outbox-hub'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
  chmodSync(join(shim, 'outbox-hub'), 0o755);
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  for (const p of procs) p.kill('SIGTERM');
  await Promise.all(procs.map((p) => p.exited));
  if (shim) rmSync(shim, { recursive: true, force: true });
});

describe('outbox-hub against a drainer, a gateway and ops', () => {
  it('publishes with key and headers, then tails from earliest, a sequence and a time, and live until --count', async () => {
    const id = json<{ eventId: string }>(
      await ok(['publish', 'orders.created', '{"n":1}', '--key', 'k-1', '--header', 'trace=abc', '--header', 'tenant=eu', '--json']),
    ).eventId;
    expect(await ok(['publish', 'orders.created', '-', '--key', 'k-1', '--id', 'order-2'], { input: '{"n":2}' })).toMatch(
      /^published orders\.created key k-1 → event order-2$/m,
    );
    await logged([id, 'order-2']);
    const [first, second] = ndjson<Ev>(await ok(['tail', 'orders.*', '--from', 'earliest', '--count', '2', '--json']));
    expect(first).toMatchObject({ id, topic: 'orders.created', key: 'k-1', payload: { n: 1 }, headers: { trace: 'abc', tenant: 'eu' } });
    expect(second).toMatchObject({ id: 'order-2', seq: first!.seq + 1 });
    // After a sequence: the next event of that partition.
    const after = ndjson<Ev>(await ok(['tail', 'orders.*', '--from', `${first!.partition}:${first!.seq}`, '--count', '1', '--json']));
    expect(after.map((e) => e.id)).toEqual(['order-2']);
    // From a time: ops turns it into positions; the first event published at or after it.
    await sleep(30);
    const mark = new Date().toISOString();
    await sleep(30);
    const third = await publish('orders.paid', { n: 3 }, 'k-3');
    await logged([third]);
    expect(ndjson<Ev>(await ok(['tail', 'orders.*', '--from', mark, '--count', '1', '--json'])).map((e) => e.id)).toEqual([third]);
    // Human output: one line per event, without colour when piped.
    const human = await ok(['tail', 'orders.paid', '--from', 'earliest', '--count', '1']);
    expect(human).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} orders\\.paid k-3 p${partitionOf('k-3', P)}:\\d+ \\{"n":3\\}\\n$`));
    expect(human).not.toContain('\u001b[');

    // Live: started before the event, it prints it and exits at --count.
    const live = cli(['tail', 'live.*', '--count', '1', '--json']);
    const finished = await Promise.race([
      live,
      (async () => {
        for (let n = 0; n < 100; n++) {
          await publish('live.tick', { n }, 'live');
          const r = await Promise.race([live, sleep(300).then(() => undefined)]);
          if (r) return r;
        }
        return undefined;
      })(),
    ]);
    expect(finished).toMatchObject({ code: 0 });
    expect(ndjson<Ev>(finished!.stdout)).toHaveLength(1);
    expect(ndjson<Ev>(finished!.stdout)[0]!.topic).toBe('live.tick');
  }, 90_000);

  it('stops a tail on Ctrl-C with exit 0, and on --for', async () => {
    const child = spawn(process.execPath, [CLI, 'tail', 'nothing.here'], { env: { ...userEnv(), ...env }, stdio: 'ignore' });
    await sleep(3_000);
    child.kill('SIGINT');
    const code = await new Promise((r) => child.once('exit', (c, s) => r(c ?? s)));
    expect(code).toBe(0);
    const started = Date.now();
    expect(await ok(['tail', 'nothing.here', '--for', '1s', '--json'])).toBe('');
    expect(Date.now() - started).toBeLessThan(10_000);
  }, 30_000);

  it('replays a time window as NDJSON, in order per partition, and only that window', async () => {
    const before = await publish('audit.login', { n: 0 }, 'u-0');
    await logged([before]);
    await sleep(30);
    const since = new Date().toISOString();
    const inside: string[] = [];
    for (let n = 1; n <= 6; n++) inside.push(await publish(n % 2 ? 'audit.login' : 'audit.logout', { n }, `u-${n % 3}`));
    inside.push(await publish('other.topic', { n: 7 }, 'u-1'));
    await logged(inside);
    await sleep(30);
    const until = new Date().toISOString();
    await sleep(30);
    const late = await publish('audit.login', { n: 8 }, 'u-1');
    await logged([late]);
    const events = ndjson<Ev>(await ok(['replay', 'audit.*', '--since', since, '--until', until]));
    expect(events.map((e) => e.id).sort()).toEqual(inside.slice(0, 6).sort());
    for (let i = 1; i < events.length; i++) {
      const [a, b] = [events[i - 1]!, events[i]!];
      expect(a.partition < b.partition || (a.partition === b.partition && a.seq < b.seq)).toBe(true);
    }
    // An exact topic, and a relative --since: everything of it in the last hour.
    const logins = ndjson<Ev>(await ok(['replay', 'audit.login', '--since', '1h', '--json']));
    expect(logins.map((e) => e.id)).toEqual(expect.arrayContaining([before, late]) as unknown);
    expect(logins.every((e) => e.topic === 'audit.login')).toBe(true);
    expect(await cli(['replay', 'audit.*', '--since', 'last week'])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/bad --since time "last week"/) as unknown,
    });
    expect(await cli(['replay', 'audit.*', '--since', '1m', '--until', '2h'])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/before --since/) as unknown,
    });
  }, 60_000);

  it('shows status and lag, human and --json, with the read token; refuses a wrong ops token (exit 1)', async () => {
    const status = await eventually(
      async () => {
        const s = json<{ healthy: boolean; partitions: number; problems: string[]; leases: { drainers: unknown[] } }>(
          await ok(['status', '--json']),
        );
        return s.leases.drainers.length === 1 && s.healthy && s;
      },
      20_000,
      'a healthy status',
    );
    expect(status.partitions).toBe(P);
    const human = await ok(['status', '--all', '--check'], { env: { OUTBOX_HUB_OPS_TOKEN: READ } });
    expect(human).toMatch(/^✔ all healthy$/m);
    expect(human).toMatch(/^drainers +gateways +pending +oldest pending +dead +throughput\/s +group lag +dead letters$/m);
    expect(human).toMatch(/^partition +pending +oldest +dead +head +rate\/s +drainer$/m);
    expect(human.split('\n').filter((l) => /^ *\d+ +\d+ +\d+s +\d+ +\d+/.test(l))).toHaveLength(P);

    const c = await member();
    const seen: string[] = [];
    await c.subscribe('audit.*', { group: 'auditors', from: 'earliest' }, (_p, e) => void seen.push(e.id));
    await eventually(() => seen.length >= 7, 20_000, 'the auditors group to catch up');
    const lag = await eventually(
      async () => {
        const l = json<{ groups: Array<{ group: string; gateways: number; lagEvents: number; partitions: unknown[] }> }>(
          await ok(['lag', 'auditors', '--json']),
        );
        return l.groups[0]?.gateways === 1 && l.groups[0].lagEvents === 0 && l;
      },
      20_000,
      'the auditors group in ops’ sample',
    );
    expect(lag.groups).toHaveLength(1);
    expect(lag.groups[0]!.partitions).toHaveLength(P);
    expect(await ok(['lag', '--all'])).toMatch(/^group +partition +cursor +head +lag \(events\) +lag \(age\)$/m);
    expect(await ok(['groups', 'ls'])).toMatch(/^auditors +audit\.\* +1 +0 +0s +0$/m);

    const unknown = await cli(['lag', 'nope']);
    expect(unknown).toMatchObject({ code: 1, stderr: expect.stringMatching(/no consumer group nope/) as unknown });
    const wrong = await cli(['status'], { env: { OUTBOX_HUB_OPS_TOKEN: 'wrong-token-0123456789' } });
    expect(wrong).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/a read token is required \(UNAUTHORIZED\); give the ops token/) as unknown,
    });
    // Reads with the read token; changes need the admin one.
    const readOnly = await cli(['groups', 'reset', 'auditors', '--to', 'latest'], { env: { OUTBOX_HUB_OPS_TOKEN: READ } });
    expect(readOnly).toMatchObject({ code: 1, stderr: expect.stringMatching(/the admin token is required \(UNAUTHORIZED\)/) as unknown });
    await c.close();
  }, 60_000);

  it('resets a group to a time and a new member receives from there; refuses while a member is connected unless --force', async () => {
    const before = [await publish('reset.a', { n: 1 }, 'r-1'), await publish('reset.a', { n: 2 }, 'r-2')];
    await logged(before);
    await sleep(30);
    const mark = new Date().toISOString();
    await sleep(30);
    const afterMark = [await publish('reset.a', { n: 3 }, 'r-1'), await publish('reset.a', { n: 4 }, 'r-3')];
    await logged(afterMark);

    // A member reads everything and leaves: the group's cursors are at the head.
    let c = await member();
    const first: string[] = [];
    const sub = await c.subscribe('reset.*', { group: 'rewind', from: 'earliest' }, (_p, e) => void first.push(e.id));
    await eventually(() => first.length === 4, 20_000, 'the first member to read everything');
    await sub.unsubscribe();
    await c.close();
    // Once the member's gateway has let the group go (it releases the leases when its last member leaves).
    const reset = await eventually(
      async () => {
        const r = await cli(['groups', 'reset', 'rewind', '--to', mark, '--json']);
        return r.code === 0 && json<{ partitions: Array<{ partition: number; cursor: number; fenced: boolean }> }>(r.stdout);
      },
      20_000,
      'the reset, once the member left',
    );
    expect(reset.partitions).toHaveLength(P);
    expect(reset.partitions.some((p) => p.fenced)).toBe(false);

    // A new member receives what was published from that time on, and nothing before it.
    c = await member();
    const second: string[] = [];
    await c.subscribe('reset.*', { group: 'rewind' }, (_p, e) => void second.push(e.id));
    await eventually(() => second.length >= 2, 20_000, 'the new member to receive from the reset time');
    await sleep(500);
    expect(second.sort()).toEqual([...afterMark].sort());

    // With that member connected, a reset is refused (exit 1, saying how to force it) ...
    const refused = await cli(['groups', 'reset', 'rewind', '--to', 'earliest']);
    expect(refused).toMatchObject({ code: 1, stderr: expect.stringMatching(/group rewind has consumers .*--force/) as unknown });
    // ... and forced, it fences the gateway: at its next cursor write it hands the partition over, and the
    // member receives from the start again.
    const forced = await ok(['groups', 'reset', 'rewind', '--to', 'earliest', '--force']);
    expect(forced).toMatch(/^group rewind reset to earliest in 4 partitions$/m);
    const nudge = await publish('reset.a', { n: 5 }, 'r-1');
    await logged([nudge]);
    await eventually(() => second.filter((id) => id === before[0]).length > 0, 30_000, 'the member to receive from earliest again');
    await c.close();
    // Deleted once nobody consumes it (refused with exit 1 while the gateway still serves it).
    await eventually(async () => (await cli(['groups', 'delete', 'rewind'])).code === 0, 20_000, 'the group deleted');
    expect(await cli(['groups', 'delete', 'rewind'])).toMatchObject({ code: 1, stderr: expect.stringMatching(/no such group/) as unknown });

    expect(await cli(['groups', 'reset', 'nope', '--to', 'earliest'])).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/no consumer group nope/) as unknown,
    });
    expect(await cli(['groups', 'reset', 'rewind', '--to', 'yesterday-ish'])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/bad --to time/) as unknown,
    });
  }, 90_000);

  it('lists, shows and requeues a dead outbox message; a second requeue delivers nothing twice', async () => {
    const partition = partitionOf('dead-key', P);
    // Written around the library, as a buggy writer might: a wildcard topic cannot be published.
    await t.db.collection(`outbox_p${partition}`).insertOne({
      _id: 'broken-1' as never,
      topic: 'orders.*',
      key: 'dead-key',
      payload: { n: 1 },
      headers: {},
      ts: Date.now() * 1000,
      createdAt: new Date(),
    });
    const listed = await eventually(
      async () => {
        const d = json<{ outbox: Array<{ id: string; lastError: string }> }>(await ok(['dead', 'ls', '--json']));
        return d.outbox.find((m) => m.id === 'broken-1');
      },
      20_000,
      'the message to be dead',
    );
    expect(listed.lastError).toMatch(/wildcard/);
    expect(await ok(['dead', 'ls'])).toMatch(/^broken-1 +\d +orders\.\* +dead-key +\d+ +(just now|.+ ago) +.*wildcard/m);
    expect(await ok(['dead', 'show', 'broken-1'])).toMatch(/^status +dead$/m);
    expect(await cli(['dead', 'show', 'no-such-message'])).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/no outbox message no-such-message/) as unknown,
    });

    await t.db.collection('outbox_dead').updateOne({ _id: 'broken-1' as never }, { $set: { topic: 'orders.fixed' } });
    expect(json(await ok(['dead', 'requeue', 'broken-1', '--json']))).toEqual({ requeued: ['broken-1'], skipped: [] });
    const again = await ok(['dead', 'requeue', 'broken-1']);
    expect(again).toMatch(/^requeued 0 dead messages$/m);
    expect(again).toMatch(/^skipped 1 not dead .*: broken-1$/m);
    await logged(['broken-1']);
    expect(json(await ok(['dead', 'requeue', '--all', '--json']))).toEqual({ requeued: [], skipped: [] });
    await sleep(1_000);
    expect(await t.db.collection('events').countDocuments({ _id: 'broken-1' as never })).toBe(1);
    expect(await t.db.collection('outbox_dead').countDocuments({})).toBe(0);
  }, 60_000);

  it("replays a group's dead letters, once however often it is asked", async () => {
    const id = await publish('flaky.job', { n: 1 }, 'f-1');
    await logged([id]);
    const c = await member();
    let failing = true;
    const deliveries: Array<{ id: string; delivery: number }> = [];
    const stream = c.stream('flaky.*', { group: 'flaky', from: 'earliest' });
    const reader = (async () => {
      for await (const d of stream) {
        deliveries.push({ id: d.event.id, delivery: d.delivery });
        if (failing) await d.nack(0);
        else await d.ack();
      }
    })();
    const letters = await eventually(
      async () => {
        const r = await cli(['dead', 'ls', '--group', 'flaky', '--json']);
        const l =
          r.code === 0
            ? json<{ groups: Array<{ letters: Array<{ event: { id: string }; deliveries: number }> }> }>(r.stdout).groups[0]?.letters
            : [];
        return l && l.length === 1 && l;
      },
      20_000,
      'a dead letter in group flaky',
    );
    expect(letters[0]).toMatchObject({ event: { id }, deliveries: 2 });
    expect(await ok(['dead', 'show', id, '--group', 'flaky'])).toMatch(/^deliveries +2$/m);
    failing = false;
    const before = deliveries.length;
    expect(json(await ok(['dead', 'replay', 'flaky', '--all', '--json']))).toEqual({ group: 'flaky', replaying: [id], skipped: [] });
    expect(json(await ok(['dead', 'replay', 'flaky', id, '--json']))).toEqual({ group: 'flaky', replaying: [], skipped: [id] });
    await eventually(() => deliveries.length === before + 1, 20_000, 'the replayed letter to be delivered');
    await sleep(1_500);
    expect(deliveries.slice(before)).toEqual([{ id, delivery: 1 }]);
    expect(await ok(['dead', 'replay', 'flaky', id])).toMatch(/^replaying 0 dead letters of group flaky$/m);
    expect(await cli(['dead', 'replay', 'no-such-group', '--all'])).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/no consumer group no-such-group/) as unknown,
    });
    await stream.unsubscribe();
    await reader;
  }, 60_000);

  it('fills a hole with repair, and says so when there is none', async () => {
    const ids = [await publish('hole.x', { n: 1 }, 'h'), await publish('hole.x', { n: 2 }, 'h'), await publish('hole.x', { n: 3 }, 'h')];
    await logged(ids);
    const middle = (await t.db.collection('events').findOne({ _id: ids[1] as never }))!;
    await t.db.collection('events').deleteOne({ _id: ids[1] as never });
    const partition = middle['partition'] as number;
    const seq = middle['seq'] as number;
    expect(await ok(['repair', String(partition), '--after', String(seq - 1)])).toMatch(
      new RegExp(`^filled partition ${partition}, sequence ${seq}, with gap events; readers go on$`, 'm'),
    );
    expect(await cli(['repair', String(partition), '--after', String(seq - 1)])).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/no missing sequence/) as unknown,
    });
    expect(await cli(['repair', String(P + 5), '--after', '1'])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/partition must be a whole number/) as unknown,
    });
  }, 30_000);

  it('mints a token the gateway accepts, checks tokens, and refuses a wrong one with exit 1', async () => {
    const minted = (await ok(['token', '--secret', TEST_SECRET, '--sub', 'cli-user', '--scope', 'publish:cli.**'])).trim();
    expect(await ok(['publish', 'cli.hello', '{}', '--json'], { env: { OUTBOX_HUB_TOKEN: minted } })).toMatch(/"eventId"/);
    const forbidden = await cli(['publish', 'orders.created', '{}'], { env: { OUTBOX_HUB_TOKEN: minted } });
    expect(forbidden).toMatchObject({ code: 1, stderr: expect.stringMatching(/FORBIDDEN/) as unknown });
    expect(await ok(['token', 'check', minted], { env: { JWT_SECRET: TEST_SECRET } })).toMatch(/^✔ valid$/m);
    const other = await testToken({ scopes: 'publish:**' }, { secret: 'another-secret-that-is-at-least-32-bytes' });
    const wrong = await cli(['publish', 'cli.hello', '{}'], { env: { OUTBOX_HUB_TOKEN: other } });
    expect(wrong).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/the gateway refused the token: .*SIGNATURE_INVALID/) as unknown,
    });
    expect(await cli(['tail', 'cli.*'], { env: { OUTBOX_HUB_TOKEN: other } })).toMatchObject({ code: 1 });
    expect(await cli(['token', 'check', other], { env: { JWT_SECRET: TEST_SECRET } })).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/SIGNATURE_INVALID/) as unknown,
    });
  }, 30_000);

  it("checks the gateway's configuration: valid, and invalid with the binary's own message and exit code", async () => {
    const valid = json<{ valid: boolean; config: Record<string, unknown> }>(
      await ok(['config', 'check', 'gateway', '--json'], { env: gatewayEnv }),
    );
    expect(valid.valid).toBe(true);
    expect(JSON.stringify(valid.config)).not.toContain(TEST_SECRET);
    const bad = { ...gatewayEnv, JWT_SECRET: 'short', MAX_DELIVERIES: 'lots' };
    const binary = startBinary('gateway', bad);
    expect(await binary.exited).toBe(2);
    const message = String(binary.logs.find((l) => l['code'] === 'CONFIG_INVALID')?.msg);
    expect(message).toMatch(/^invalid configuration: /);
    const checked = await cli(['config', 'check', 'gateway'], { env: bad });
    expect(checked.code).toBe(2);
    expect(checked.stderr.trim()).toBe(`outbox-hub: ${message}`);
  }, 30_000);

  it('completes commands in bash through the completion script', () => {
    const complete = (words: string[]): string[] => {
      const script = [
        'source <(outbox-hub completion)',
        `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})`,
        `COMP_CWORD=${words.length - 1}`,
        '_outbox-hub_yargs_completions',
        'printf "%s\\n" "${COMPREPLY[@]}"',
      ].join('\n');
      const r = spawnSync('bash', ['-c', script], {
        env: { ...process.env, PATH: `${shim}:${process.env['PATH'] ?? ''}` },
        encoding: 'utf8',
      });
      expect(r.stderr).toBe('');
      return r.stdout.split('\n').filter((l) => l !== '');
    };
    expect(complete(['outbox-hub', 'gr'])).toEqual(['groups']);
    expect(complete(['outbox-hub', 'groups', 're'])).toEqual(['reset']);
    expect(complete(['outbox-hub', 'dead', 're'])).toEqual(['requeue', 'replay']);
    expect(complete(['outbox-hub', 'config', 'check', 'ga'])).toEqual(['gateway']);
  });

  it('colours tables, shows the banner and a progress bar on a terminal (a pseudo-terminal), and none of it when piped', async () => {
    if (spawnSync('script', ['--version']).status !== 0) {
      process.stderr.write('\n  SKIPPED (no `script` from util-linux): the pseudo-terminal session\n');
      return;
    }
    /** Runs `outbox-hub <args>` in a pseudo-terminal 120 columns wide; returns what the terminal showed. */
    const terminal = (args: string): Ran => {
      const r = spawnSync('script', ['-q', '-e', '-c', `stty cols 120 2>/dev/null; outbox-hub ${args}`, '/dev/null'], {
        env: { ...userEnv(), ...env, PATH: `${shim}:${process.env['PATH'] ?? ''}`, TERM: 'xterm-256color' },
        encoding: 'utf8',
        timeout: 30_000,
      });
      return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
    };
    const ESC = '\u001b[';
    /** A pattern for an ANSI escape (ESC [) followed by `rest`. */
    const sgr = (rest: string): RegExp => new RegExp(`${ESC.replace('[', '\\[')}${rest}`);
    const status = terminal('status');
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`${ESC}1m`); // bold headings
    expect(status.stdout).toMatch(sgr('3[12]m(✔ all healthy|✖ )')); // the headline in green, or red with what is wrong
    expect(status.stdout).toMatch(/drainers.*gateways.*pending/);
    const piped = await ok(['status']);
    expect(piped).not.toContain(ESC);
    expect(piped).toMatch(/^(✔ all healthy|✖ .+)$/m);
    // --no-color (and NO_COLOR) win even on a terminal.
    expect(terminal('status --no-color').stdout).not.toMatch(sgr('3\\dm'));

    await logged([await publish('tty.demo', { n: 1 }, 't-1'), await publish('tty.demo', { n: 2 }, 't-2')]);
    const tail = terminal("tail 'tty.*' --from earliest --count 2");
    expect(tail.code).toBe(0);
    expect(tail.stdout).toMatch(/tailing tty\.\* from earliest \(Ctrl-C to stop\)/);
    expect(tail.stdout).toMatch(sgr('36mtty\\.demo')); // topics in cyan
    expect(tail.stdout).toMatch(/2 events/);

    const replay = terminal("replay '**' --since 1h");
    expect(replay.code).toBe(0);
    expect(replay.stdout).toMatch(/replay .*\d+% \| \d+\/\d+ events \| \d+\/s \| ETA/);
    expect(replay.stdout).toMatch(/\d+ events of \*\* from .* in [\d.]+s/);
  }, 60_000);
});
