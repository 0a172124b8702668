/**
 * The command line's pure parts (times, spans, formatting, the headline,
 * redaction, tables, colour rules) and the commands that need no server
 * (usage errors and exit codes, help, completion, tokens, config checks), run
 * in process. The commands against real processes: test/cli.process.test.ts.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import {
  colorEnabled,
  formatAge,
  formatRelative,
  Output,
  parseHeaders,
  parseSpan,
  parseTime,
  problems,
  redacted,
  resetTo,
  runCli,
  type CliIO,
  type Overview,
} from '../internal/cli/index.js';

const NOW = new Date('2026-11-25T12:00:00.000Z');
const SECRET = 'cli-unit-test-secret-at-least-32-bytes!';

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the command line in process with captured streams (not terminals unless `tty`). */
async function cli(args: string[], env: Record<string, string> = {}, tty = false): Promise<Ran> {
  const stdout = Object.assign(new PassThrough(), { isTTY: tty, columns: 100 });
  const stderr = Object.assign(new PassThrough(), { isTTY: tty, columns: 100 });
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => void (out += d.toString()));
  stderr.on('data', (d: Buffer) => void (err += d.toString()));
  const io: CliIO = { stdout, stderr, stdin: Readable.from([]), env, signal: new AbortController().signal };
  const code = await runCli(args, io);
  return { code, stdout: out, stderr: err };
}

describe('times', () => {
  it('reads ISO-8601 with a zone, local ISO, now, and times ago', () => {
    expect(parseTime('2026-11-24T10:42:00Z', 'time', NOW).toISOString()).toBe('2026-11-24T10:42:00.000Z');
    expect(parseTime('2026-11-24T10:42:00.5+02:00', 'time', NOW).toISOString()).toBe('2026-11-24T08:42:00.500Z');
    expect(parseTime('2026-11-24T10:42', 'time', NOW).getTime()).toBe(new Date(2026, 10, 24, 10, 42).getTime());
    expect(parseTime('2026-11-24', 'time', NOW).getTime()).toBe(new Date(2026, 10, 24).getTime());
    expect(parseTime('now', 'time', NOW)).toEqual(NOW);
    expect(parseTime('10m', 'time', NOW).toISOString()).toBe('2026-11-25T11:50:00.000Z');
    expect(parseTime('2h', 'time', NOW).toISOString()).toBe('2026-11-25T10:00:00.000Z');
    expect(parseTime('1d', 'time', NOW).toISOString()).toBe('2026-11-24T12:00:00.000Z');
    expect(parseTime('1h30m ago', 'time', NOW).toISOString()).toBe('2026-11-25T10:30:00.000Z');
  });

  it('refuses what is not a time, naming it: a usage error (exit 2)', () => {
    for (const bad of ['yesterday', '10x', '', '2026-02-30T10:00:00Z', '2026-02-30', '2026-11-24T25:00', '1700000000', '-5m', '10 m']) {
      expect(() => parseTime(bad, '--since time', NOW)).toThrow(expect.objectContaining({ code: 'USAGE', exitCode: 2 }) as Error);
    }
    expect(() => parseTime('soon', '--since time', NOW)).toThrow(/bad --since time "soon": use an ISO-8601 time/);
  });

  it('reads spans and formats ages and relative times', () => {
    expect(parseSpan('90s')).toBe(90_000);
    expect(parseSpan('1h30m')).toBe(5_400_000);
    expect(parseSpan('1w')).toBe(604_800_000);
    expect(parseSpan('5')).toBeNaN();
    expect([0, 42.9, 185, 7_500, 273_600].map(formatAge)).toEqual(['0s', '42s', '3m 5s', '2h 5m', '3d 4h']);
    expect(formatAge(120)).toBe('2m');
    expect(formatAge(-3)).toBe('0s');
    expect(formatRelative(new Date(NOW.getTime() - 300_000), NOW)).toBe('5m ago');
    expect(formatRelative('2026-11-25T14:00:00.000Z', NOW)).toBe('in 2h');
    expect(formatRelative(NOW, NOW)).toBe('just now');
  });

  it('sends a reset target as earliest, latest or ISO', () => {
    expect(resetTo('earliest', NOW)).toBe('earliest');
    expect(resetTo('latest', NOW)).toBe('latest');
    expect(resetTo('30m', NOW)).toBe('2026-11-25T11:30:00.000Z');
    expect(() => resetTo('last tuesday', NOW)).toThrow(expect.objectContaining({ code: 'USAGE' }) as Error);
  });
});

describe('output', () => {
  it('colours only a terminal, and never with NO_COLOR, TERM=dumb or --no-color; FORCE_COLOR and --color force it', () => {
    const tty = Object.assign(new PassThrough(), { isTTY: true });
    const pipe = new PassThrough();
    expect(colorEnabled(tty, {}, undefined)).toBe(true);
    expect(colorEnabled(pipe, {}, undefined)).toBe(false);
    expect(colorEnabled(tty, { NO_COLOR: '1' }, undefined)).toBe(false);
    expect(colorEnabled(tty, { TERM: 'dumb' }, undefined)).toBe(false);
    expect(colorEnabled(pipe, { FORCE_COLOR: '1' }, undefined)).toBe(true);
    expect(colorEnabled(tty, {}, false)).toBe(false);
    expect(colorEnabled(pipe, { NO_COLOR: '1' }, true)).toBe(true);
  });

  it('aligns tables without borders or trailing blanks, numbers on the right', () => {
    const io: CliIO = {
      stdout: new PassThrough(),
      stderr: new PassThrough(),
      stdin: Readable.from([]),
      env: {},
      signal: new AbortController().signal,
    };
    const out = new Output(io, { json: false, color: false });
    const text = out.table(
      [{ head: 'group' }, { head: 'lag', align: 'right' }],
      [
        ['billing', 12],
        ['a', 3456],
      ],
    );
    expect(text.split('\n')).toEqual(['group     lag', 'billing    12', 'a        3456']);
    const coloured = new Output(io, { json: false, color: true }).table([{ head: 'x' }], [['y']]);
    expect(coloured).toContain('\u001b[1m');
  });

  it('parses --header name=value pairs and refuses others', () => {
    expect(parseHeaders(['trace=abc', 'a=b=c', 'empty='])).toEqual({ trace: 'abc', a: 'b=c', empty: '' });
    expect(() => parseHeaders(['novalue'])).toThrow(expect.objectContaining({ code: 'USAGE' }) as Error);
    expect(() => parseHeaders(['=x'])).toThrow(expect.objectContaining({ code: 'USAGE' }) as Error);
  });

  it('redacts every configured secret and shows keys and clients by kind', () => {
    const shown = redacted(
      {
        url: 'mongodb://u:pw-secret@h/db',
        nested: { token: 'tok-0123456789abcdef' },
        key: new Uint8Array([1]),
        list: ['pw-secret'],
        n: 3,
        when: NOW,
      },
      ['pw-secret', 'tok-0123456789abcdef'],
    );
    expect(shown).toEqual({
      url: 'mongodb://u:***@h/db',
      nested: { token: '***' },
      key: '***',
      list: ['***'],
      n: 3,
      when: NOW.toISOString(),
    });
    expect(redacted(new (class Keys {})(), [])).toBe('[Keys]');
  });
});

describe('the ops headline', () => {
  const base: Overview = {
    at: NOW.toISOString(),
    sampledAt: NOW.toISOString(),
    partitions: 4,
    backlog: { pending: 0, dead: 0, oldestPendingAgeSeconds: 0, byPartition: [] },
    leases: { partitions: [], drainers: [{ group: 'drainer', member: 'd1', expiresAt: NOW.toISOString() }], gateways: [] },
    lapsed: { drainers: [], gateways: [] },
    unownedPartitions: [],
    throughputPerSecond: 0,
    partitionHeads: [],
    stalledPartitions: [],
    groupDeadLetters: 0,
    groups: [],
  };

  it('is empty when all is well and names each problem as the dashboard does', () => {
    expect(problems(base, NOW)).toEqual([]);
    const bad: Overview = {
      ...base,
      backlog: { ...base.backlog, dead: 2, oldestPendingAgeSeconds: 125 },
      leases: { ...base.leases, drainers: [] },
      unownedPartitions: [1, 2],
      lapsed: { drainers: [{ group: 'drainer', member: 'd0', expiresAt: new Date(NOW.getTime() - 90_000).toISOString() }], gateways: [] },
      groupDeadLetters: 1,
      stalledPartitions: [{ partition: 3, seq: 9, since: NOW.toISOString(), reporter: 'g', gap: { from: 9, to: 9 } }],
      groups: [
        { group: 'slow', filter: '**', gateways: 1, lagEvents: 5, lagExact: true, maxLagSeconds: 61, deadLetters: 0 },
        { group: 'orphan', filter: '**', gateways: 0, lagEvents: 1, lagExact: true, maxLagSeconds: 1, deadLetters: 0 },
      ],
    };
    expect(problems(bad, NOW)).toEqual([
      'no drainer alive',
      '2 partitions without a drainer',
      '1 drainer(s) stopped without leaving in the last hour (d0, 1m 30s ago)',
      'oldest pending 2m 5s',
      '2 dead messages',
      '1 group dead letters',
      '1 log partitions stalled behind a missing sequence',
      'lagging: slow',
      'no consumers: orphan',
    ]);
  });
});

describe('commands that need no server', () => {
  it('exits 2 with a message for usage errors, and 0 with help on every command', async () => {
    expect(await cli([])).toMatchObject({ code: 2, stderr: expect.stringMatching(/name a command/) as unknown });
    expect(await cli(['bogus'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/Unknown argument: bogus/) as unknown });
    expect(await cli(['groups'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/name a groups command/) as unknown });
    const missing = await cli(['groups', 'reset', 'billing']);
    expect(missing).toMatchObject({ code: 2, stderr: expect.stringMatching(/Missing required argument: to/) as unknown });
    expect(missing.stderr).toMatch(/outbox-hub groups reset --help/);
    expect(await cli(['status', '--bogus-flag'])).toMatchObject({ code: 2 });
    expect(await cli(['replay', 'orders.*', '--since', 'whenever'])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/bad --since time "whenever"/) as unknown,
    });
    expect(await cli(['tail', 'orders.***'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/bad topic pattern/) as unknown });
    expect(await cli(['publish', 'orders.*', '{}'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/bad topic/) as unknown });
    expect(await cli(['publish', 'orders.created', '{nope'])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/the payload is not JSON/) as unknown,
    });
    expect(await cli(['tail', 'orders.*'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/needs a token/) as unknown });
    expect(await cli(['dead', 'requeue'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/or --all/) as unknown });
    const commands = [
      [],
      ['status'],
      ['lag'],
      ['tail'],
      ['publish'],
      ['replay'],
      ['groups'],
      ['groups', 'ls'],
      ['groups', 'reset'],
      ['groups', 'delete'],
      ['dead'],
      ['dead', 'ls'],
      ['dead', 'show'],
      ['dead', 'requeue'],
      ['dead', 'replay'],
      ['repair'],
      ['token'],
      ['token', 'check'],
      ['config', 'check'],
    ];
    for (const c of commands) {
      const r = await cli([...c, '--help']);
      expect([c.join(' '), r.code, r.stderr]).toEqual([c.join(' '), 0, '']);
      expect(r.stdout).toContain(`outbox-hub ${c.join(' ')}`.trim());
    }
  });

  it('prints a shell completion script (completing through it: test/cli.process.test.ts)', async () => {
    const script = await cli(['completion']);
    expect(script.code).toBe(0);
    expect(script.stdout).toMatch(/outbox-hub --get-yargs-completions/);
    expect(script.stdout).toMatch(/complete -o bashdefault -o default -F _outbox-hub_yargs_completions outbox-hub/);
  });

  it('mints a token and checks it: valid, wrong secret (exit 1), not a JWT (exit 2), decoded without the secret', async () => {
    const minted = await cli(['token', '--secret', SECRET, '--sub', 'svc-a', '--scope', 'subscribe:orders.*', '--ttl', '1h', '--json']);
    expect(minted.code).toBe(0);
    const doc = JSON.parse(minted.stdout) as { token: string; claims: Record<string, unknown>; header: { alg: string } };
    expect(doc.claims).toMatchObject({ sub: 'svc-a', scopes: 'subscribe:orders.*' });
    expect(doc.header.alg).toBe('HS256');
    expect((doc.claims['exp'] as number) - Math.floor(Date.now() / 1000)).toBeGreaterThan(3590);

    const plain = await cli(['token'], { JWT_SECRET: SECRET });
    expect(plain.code).toBe(0);
    expect(plain.stdout.trim().split('.')).toHaveLength(3);
    expect(plain.stderr).toMatch(/subject dev · scopes publish:\*\* subscribe:\*\* · expires .* \(in 11h 59m\)/);

    const ok = await cli(['token', 'check', doc.token, '--secret', SECRET]);
    expect(ok).toMatchObject({ code: 0, stdout: expect.stringMatching(/✔ valid[\s\S]*subject\s+svc-a/) as unknown });
    const wrong = await cli(['token', 'check', doc.token, '--secret', `${SECRET}-other`, '--json']);
    expect(wrong.code).toBe(1);
    expect(JSON.parse(wrong.stdout)).toMatchObject({ valid: false, problem: 'SIGNATURE_INVALID' });
    expect(wrong.stderr).toMatch(/the token does not verify: SIGNATURE_INVALID/);
    const expired = (await cli(['token', '--secret', SECRET, '--ttl', '1s', '--json'])).stdout;
    await new Promise((r) => setTimeout(r, 1_100));
    expect(await cli(['token', 'check', (JSON.parse(expired) as { token: string }).token, '--secret', SECRET])).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/TOKEN_EXPIRED/) as unknown,
    });
    expect(await cli(['token', 'check', 'not.a.jwt', '--secret', SECRET])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/not a JWT/) as unknown,
    });
    expect(await cli(['token', 'check', doc.token])).toMatchObject({ code: 2, stderr: expect.stringMatching(/--no-verify/) as unknown });
    const decoded = await cli(['token', 'check', doc.token, '--no-verify']);
    expect(decoded).toMatchObject({ code: 0, stdout: expect.stringMatching(/decoded, not verified/) as unknown });
    expect(await cli(['token', '--secret', 'short'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/at least 32/) as unknown });
    expect(await cli(['token', '--secret', SECRET, '--ttl', 'forever'])).toMatchObject({ code: 2 });
  });

  it("checks a binary's configuration with the binary's own loader: its message and exit 2 when invalid, redacted when valid", async () => {
    const bad = await cli(['config', 'check', 'drainer'], { MONGO_URL: 'postgres://x', OUTBOX_PARTITIONS: 'many' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(
      /invalid configuration: MONGO_URL must be a mongodb:\/\/ or mongodb\+srv:\/\/ URL; OUTBOX_PARTITIONS must be a whole number/,
    );
    const badJson = await cli(['config', 'check', 'gateway', '--json'], { MONGO_URL: 'mongodb://h/db' });
    expect(badJson.code).toBe(2);
    expect(JSON.parse(badJson.stdout)).toMatchObject({ binary: 'gateway', valid: false, error: 'CONFIG_INVALID' });
    const good = await cli(['config', 'check', 'ops', '--json'], {
      MONGO_URL: 'mongodb://user:hunter2-password@h/db',
      OPS_ADMIN_TOKEN: 'admin-token-0123456789',
    });
    expect(good.code).toBe(0);
    const shown = JSON.parse(good.stdout) as { valid: boolean; config: Record<string, unknown> };
    expect(shown.valid).toBe(true);
    expect(shown.config).toMatchObject({ mongoUrl: 'mongodb://user:***@h/db', adminToken: '***', port: 8081 });
    expect(good.stdout).not.toMatch(/hunter2|admin-token-0123456789/);
    expect(await cli(['config', 'check', 'demo'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/Invalid values/) as unknown });
  });

  it('reaches no server it was not given: an unreachable ops or gateway fails with exit 1 and says where it looked', async () => {
    const ops = await cli(['status', '--ops', 'http://127.0.0.1:9']);
    expect(ops).toMatchObject({ code: 1, stderr: expect.stringMatching(/cannot reach ops at http:\/\/127\.0\.0\.1:9\//) as unknown });
    const gw = await cli(['publish', 'a.b', '{}', '--gateway', 'ws://127.0.0.1:9/ws', '--token', 'x.y.z']);
    expect(gw).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/cannot reach the gateway at ws:\/\/127\.0\.0\.1:9\/ws/) as unknown,
    });
    expect(await cli(['status', '--ops', 'ftp://h'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/bad ops URL/) as unknown });
  });
});

describe('groups ls against a stand-in ops API', () => {
  it('shows a group with tags as the hub words it, and passes the tags on in --json', async () => {
    const groups = {
      sampledAt: new Date().toISOString(),
      groups: [
        { group: 'all-orders', filter: 'orders.*', gateways: 1, lagEvents: 0, lagExact: true, maxLagSeconds: 0, deadLetters: 0 },
        {
          group: 'vip-billing',
          filter: 'orders.*',
          tags: ['eu', 'vip'],
          gateways: 1,
          lagEvents: 3,
          lagExact: true,
          maxLagSeconds: 5,
          deadLetters: 0,
        },
      ],
    };
    const server = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(req.url === '/api/groups' ? groups : { error: 'NOT_FOUND', message: 'no such route' }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const env = { OUTBOX_HUB_OPS_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
      const human = await cli(['groups', 'ls'], env);
      expect(human.code).toBe(0);
      expect(human.stdout).toMatch(/^vip-billing +orders\.\* with tags eu, vip +1 +3 +5s +0$/m);
      expect(human.stdout).toMatch(/^all-orders +orders\.\* +1 +0 +0s +0$/m);
      const json = await cli(['groups', 'ls', '--json'], env);
      const doc = JSON.parse(json.stdout) as { groups: Array<{ group: string; tags?: string[] }> };
      expect(doc.groups.map((g) => [g.group, g.tags])).toEqual([
        ['all-orders', undefined],
        ['vip-billing', ['eu', 'vip']],
      ]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
