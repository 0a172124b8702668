import { envReader } from '../config/index.js';
import { LOG_LEVELS, type LogLevel } from '../log/index.js';
import { DEFAULT_PARTITIONS } from '../outbox/index.js';
import { readHubSettings, readLeaseTiming, readMemberId, type HubSettings } from '../runtime/index.js';

/** Validated drainer configuration. Frozen; built once by {@link loadDrainerConfig}. */
export interface DrainerConfig extends HubSettings {
  readonly batchSize: number;
  readonly leaseTtlMs: number;
  readonly leaseRenewMs: number;
  readonly pollMinMs: number;
  readonly pollMaxMs: number;
  readonly maxAttempts: number;
  readonly retryBaseMs: number;
  readonly statsIntervalMs: number;
  /** A held partition with work that moves nothing for this long makes the drainer not ready. */
  readonly progressTimeoutMs: number;
  /** A loop wedged this long makes the process exit (0: never). */
  readonly wedgeExitMs: number;
  readonly metricsHost: string;
  readonly metricsPort: number;
  readonly logLevel: LogLevel;
  readonly member: string;
  readonly stopTimeoutMs: number;
  /** How often each held partition gets a retention round (with RETENTION set). */
  readonly retentionIntervalMs: number;
}

/** Default values, named so docs and tests can refer to them. */
export const DRAINER_DEFAULTS = Object.freeze({
  partitions: DEFAULT_PARTITIONS,
  batchSize: 1_000,
  leaseTtlMs: 10_000,
  pollMinMs: 10,
  pollMaxMs: 1_000,
  maxAttempts: 5,
  retryBaseMs: 100,
  statsIntervalMs: 5_000,
  progressTimeoutMs: 60_000,
  wedgeExitMs: 120_000,
  metricsPort: 9464,
  stopTimeoutMs: 25_000,
  retentionIntervalMs: 30_000,
});

/**
 * Reads the drainer's environment. Throws a `ConfigError` naming every bad
 * variable. Variables: MONGO_URL, MONGO_DB, OUTBOX_PARTITIONS, DRAINER_BATCH_SIZE,
 * LEASE_TTL, LEASE_RENEW_INTERVAL, POLL_MIN, POLL_MAX, DRAINER_MAX_ATTEMPTS,
 * RETRY_BASE, STATS_INTERVAL, PROGRESS_TIMEOUT, WEDGE_EXIT_AFTER,
 * METRICS_HOST, METRICS_PORT, LOG_LEVEL, MEMBER_ID, STOP_TIMEOUT.
 */
export function loadDrainerConfig(env: Readonly<Record<string, string | undefined>>): DrainerConfig {
  const r = envReader(env);
  const cfg: DrainerConfig = {
    ...readHubSettings(r, env),
    batchSize: r.int('DRAINER_BATCH_SIZE', { default: DRAINER_DEFAULTS.batchSize, min: 1, max: 5_000 }),
    ...readLeaseTiming(r, { ttl: 'LEASE_TTL', renew: 'LEASE_RENEW_INTERVAL' }, DRAINER_DEFAULTS.leaseTtlMs),
    pollMinMs: r.duration('POLL_MIN', { default: DRAINER_DEFAULTS.pollMinMs, min: 1, max: 10_000 }),
    pollMaxMs: r.duration('POLL_MAX', { default: DRAINER_DEFAULTS.pollMaxMs, min: 1, max: 60_000 }),
    maxAttempts: r.int('DRAINER_MAX_ATTEMPTS', { default: DRAINER_DEFAULTS.maxAttempts, min: 1, max: 1_000 }),
    retryBaseMs: r.duration('RETRY_BASE', { default: DRAINER_DEFAULTS.retryBaseMs, min: 1, max: 60_000 }),
    statsIntervalMs: r.duration('STATS_INTERVAL', { default: DRAINER_DEFAULTS.statsIntervalMs, min: 100 }),
    progressTimeoutMs: r.duration('PROGRESS_TIMEOUT', { default: DRAINER_DEFAULTS.progressTimeoutMs, min: 1_000 }),
    wedgeExitMs: r.duration('WEDGE_EXIT_AFTER', { default: DRAINER_DEFAULTS.wedgeExitMs, min: 0 }),
    metricsHost: r.string('METRICS_HOST', { default: '0.0.0.0' }),
    metricsPort: r.int('METRICS_PORT', { default: DRAINER_DEFAULTS.metricsPort, min: 0, max: 65_535 }),
    logLevel: r.oneOf('LOG_LEVEL', LOG_LEVELS, { default: 'info' }),
    member: readMemberId(r),
    stopTimeoutMs: r.duration('STOP_TIMEOUT', { default: DRAINER_DEFAULTS.stopTimeoutMs, min: 100 }),
    retentionIntervalMs: r.duration('RETENTION_INTERVAL', { default: DRAINER_DEFAULTS.retentionIntervalMs, min: 100, max: 3_600_000 }),
  };
  r.done();
  return Object.freeze(cfg);
}
