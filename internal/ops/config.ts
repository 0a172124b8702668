import { envReader } from '../config/index.js';
import { LOG_LEVELS, type LogLevel } from '../log/index.js';
import { readHubSettings, type HubSettings } from '../runtime/index.js';

/** Validated ops configuration. */
export interface OpsConfig extends HubSettings {
  readonly host: string;
  readonly port: number;
  /** Bearer token for mutations; without it mutations are disabled. */
  readonly adminToken: string | undefined;
  /** Bearer token for reads; without it reads are open (ops is reached by port-forward). */
  readonly readToken: string | undefined;
  readonly sampleIntervalMs: number;
  /** A sequence hole is filled only once the event after it is this old (a write may still be landing). */
  readonly repairMinAgeMs: number;
  readonly logLevel: LogLevel;
  readonly stopTimeoutMs: number;
  /** A loop wedged this long makes the process exit (0: never). */
  readonly wedgeExitMs: number;
}

/**
 * Reads the shared settings (MONGO_URL, MONGO_DB, OUTBOX_PARTITIONS, LEASE_BACKEND, LEASE_NAMESPACE,
 * LEASE_PREFIX) and OPS_HOST, OPS_PORT, OPS_ADMIN_TOKEN, OPS_READ_TOKEN, OPS_SAMPLE_INTERVAL,
 * OPS_REPAIR_MIN_AGE, LOG_LEVEL, STOP_TIMEOUT, WEDGE_EXIT_AFTER.
 */
export function loadOpsConfig(env: Readonly<Record<string, string | undefined>>): OpsConfig {
  const r = envReader(env);
  const token = (name: string): string | undefined => {
    const v = r.string(name, { required: false });
    if (v !== '' && v.length < 16) r.fail(name, 'must be at least 16 characters');
    return v === '' ? undefined : v;
  };
  const hub = readHubSettings(r, env);
  const admin = token('OPS_ADMIN_TOKEN');
  const reader = token('OPS_READ_TOKEN');
  const cfg: OpsConfig = {
    ...hub,
    secrets: [...hub.secrets, ...[admin, reader].filter((t) => t !== undefined)],
    host: r.string('OPS_HOST', { default: '0.0.0.0' }),
    port: r.int('OPS_PORT', { default: 8081, min: 0, max: 65_535 }),
    adminToken: admin,
    readToken: reader,
    sampleIntervalMs: r.duration('OPS_SAMPLE_INTERVAL', { default: 5_000, min: 100, max: 600_000 }),
    repairMinAgeMs: r.duration('OPS_REPAIR_MIN_AGE', { default: 60_000, min: 0, max: 86_400_000 }),
    logLevel: r.oneOf('LOG_LEVEL', LOG_LEVELS, { default: 'info' }),
    stopTimeoutMs: r.duration('STOP_TIMEOUT', { default: 10_000, min: 100 }),
    wedgeExitMs: r.duration('WEDGE_EXIT_AFTER', { default: 120_000, min: 0 }),
  };
  r.done();
  return Object.freeze(cfg);
}
