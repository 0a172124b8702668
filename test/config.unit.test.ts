import { ConfigError, envReader, parseDuration } from '../internal/config/index.js';
import { loadDrainerConfig } from '../internal/drainer/index.js';
import { createLogger } from '../internal/log/index.js';
import { OutboxError } from '../internal/outbox/index.js';

describe('configuration', () => {
  it('parses durations with units', () => {
    expect(parseDuration('250')).toBe(250);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('5s')).toBe(5000);
    expect(parseDuration('2m')).toBe(120_000);
    expect(parseDuration('7d')).toBe(604_800_000);
    expect(parseDuration('5 s')).toBeNaN();
    expect(parseDuration('-1s')).toBeNaN();
  });

  it('reports every bad variable at once with a typed error', () => {
    const r = envReader({ A: 'x', B: '99', C: 'maybe', D: 'blue' });
    r.int('A');
    r.int('B', { max: 10 });
    r.bool('C');
    r.oneOf('D', ['red', 'green']);
    r.string('E');
    const err = (() => {
      try {
        r.done();
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('CONFIG_INVALID');
    expect((err as ConfigError).variables).toEqual(['A', 'B', 'C', 'D', 'E']);
  });

  it('builds a frozen drainer config with defaults and the database from the URL', () => {
    const cfg = loadDrainerConfig({ MONGO_URL: 'mongodb://db:27017/shop?replicaSet=rs0', LEASE_TTL: '9s' });
    expect(cfg).toMatchObject({ mongoDb: 'shop', partitions: 16, leaseTtlMs: 9000, leaseRenewMs: 3000, batchSize: 1000 });
    expect(Object.isFrozen(cfg)).toBe(true);
    expect(() => loadDrainerConfig({ MONGO_URL: 'mongodb://db', LEASE_TTL: '2s', LEASE_RENEW_INTERVAL: '5s' })).toThrow(
      /LEASE_RENEW_INTERVAL/,
    );
    expect(() => loadDrainerConfig({ MONGO_URL: 'mongodb://db', LEASE_BACKEND: 'etcd' })).toThrow(/LEASE_BACKEND/);
    expect(loadDrainerConfig({ MONGO_URL: 'mongodb://db', LEASE_BACKEND: 'kubernetes', POD_NAMESPACE: 'events' })).toMatchObject({
      leaseBackend: 'kubernetes',
      leaseNamespace: 'events',
      leasePrefix: 'outbox-hub',
    });
  });
});

describe('logger', () => {
  it("writes pino's shape: numeric level, epoch time, pid, hostname, child fields and the error's type, code, stack and cause", () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', write: (l) => void lines.push(l) }).child({ binary: 'x' });
    log.debug('hidden');
    const before = Date.now();
    log.warn('careful', { err: new OutboxError('INVALID_TOPIC', 'bad topic', { cause: new Error('root') }) });
    expect(lines).toHaveLength(1);
    const parsed = JSON.parse(lines[0] as string) as Record<string, unknown>;
    expect(parsed).toMatchObject({
      level: 40,
      msg: 'careful',
      binary: 'x',
      pid: process.pid,
      err: { type: 'OutboxError', code: 'INVALID_TOPIC', message: 'bad topic', cause: { type: 'Error', message: 'root' } },
    });
    expect(typeof parsed['hostname']).toBe('string');
    expect(parsed['time']).toBeGreaterThanOrEqual(before);
    expect((parsed['err'] as { stack: string }).stack).toMatch(/OutboxError: bad topic\n\s+at /);
    expect(lines[0]?.endsWith('\n')).toBe(true);
  });

  it('scrubs URL credentials and configured secrets from every line, error messages included', () => {
    const lines: string[] = [];
    const log = createLogger({ write: (l) => void lines.push(l), secrets: ['s3cr3t-pass', 'tok-0123456789'] });
    log.info('connecting', { url: 'mongodb://app:s3cr3t-pass@db-0:27017,db-1/shop?authSource=admin' });
    log.error('failed', { err: new Error('auth failed for mongodb+srv://app:other-pass@cluster.example/ with tok-0123456789') });
    const text = lines.join('');
    expect(text).not.toMatch(/s3cr3t-pass|other-pass|tok-0123456789/);
    expect(text).toContain('mongodb://app:***@db-0:27017,db-1/shop');
    expect(text).toContain('mongodb+srv://app:***@cluster.example/');
  });

  it('writes a repeated identical error once per window and summarises the rest', async () => {
    const lines: string[] = [];
    const log = createLogger({ write: (l) => void lines.push(l), repeatWindowMs: 200 });
    const err = new Error('connect ECONNREFUSED 127.0.0.1:1');
    for (let i = 0; i < 37; i++) log.child({ partition: i % 4 }).warn('drain batch failed', { err });
    log.warn('something else');
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['drain batch failed', 'something else']);
    await new Promise((r) => setTimeout(r, 450));
    const summary = JSON.parse(lines[2] as string) as { msg: string; repeated: number; level: number };
    expect(summary).toMatchObject({ repeated: 36, level: 40 });
    expect(summary.msg).toMatch(/^drain batch failed \(36 more in the last \d+ s\)$/);
    // A new window writes the line again.
    log.warn('drain batch failed', { err });
    expect(lines).toHaveLength(4);
  });
});
