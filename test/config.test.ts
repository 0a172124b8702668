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
    expect(cfg).toMatchObject({ mongoDb: 'shop', partitions: 16, leaseTtlMs: 9000, leaseRenewMs: 3000, batchSize: 500 });
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
  it('writes one JSON object per line with level filtering, child fields and error codes', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', write: (l) => void lines.push(l) }).child({ binary: 'x' });
    log.debug('hidden');
    log.warn('careful', { err: new OutboxError('INVALID_TOPIC', 'bad topic', { cause: new Error('root') }) });
    expect(lines).toHaveLength(1);
    const parsed = JSON.parse(lines[0] as string) as Record<string, unknown>;
    expect(parsed).toMatchObject({ level: 'warn', msg: 'careful', binary: 'x', err: { code: 'INVALID_TOPIC', cause: 'Error: root' } });
    expect(lines[0]?.endsWith('\n')).toBe(true);
  });
});
