import { envReader } from '../config/index.js';
import { LOG_LEVELS, type LogLevel } from '../log/index.js';
import { mongoSettings } from '../mongo/index.js';

/** Validated ops configuration. */
export interface OpsConfig {
  readonly mongoUrl: string;
  readonly mongoDb: string;
  readonly host: string;
  readonly port: number;
  readonly partitions: number;
  /** Bearer token for mutations; without it mutations are disabled. */
  readonly adminToken: string | undefined;
  /** Bearer token for reads; without it reads are open (ops is reached by port-forward). */
  readonly readToken: string | undefined;
  readonly sampleIntervalMs: number;
  /** A sequence hole is filled only once the event after it is this old (a write may still be landing). */
  readonly repairMinAgeMs: number;
  readonly logLevel: LogLevel;
  readonly stopTimeoutMs: number;
  /** Values scrubbed from every log line. */
  readonly secrets: readonly string[];
}

/** Reads MONGO_URL, MONGO_DB, OPS_HOST, OPS_PORT, OUTBOX_PARTITIONS, OPS_ADMIN_TOKEN, OPS_READ_TOKEN, OPS_SAMPLE_INTERVAL, OPS_REPAIR_MIN_AGE, LOG_LEVEL, STOP_TIMEOUT. */
export function loadOpsConfig(env: Readonly<Record<string, string | undefined>>): OpsConfig {
  const r = envReader(env);
  const token = (name: string): string | undefined => {
    const v = r.string(name, { required: false });
    if (v !== '' && v.length < 16) r.fail(name, 'must be at least 16 characters');
    return v === '' ? undefined : v;
  };
  const mongo = mongoSettings(r);
  const admin = token('OPS_ADMIN_TOKEN');
  const reader = token('OPS_READ_TOKEN');
  const cfg: OpsConfig = {
    ...mongo,
    secrets: [...mongo.secrets, ...[admin, reader].filter((t) => t !== undefined)],
    host: r.string('OPS_HOST', { default: '0.0.0.0' }),
    port: r.int('OPS_PORT', { default: 8081, min: 0, max: 65_535 }),
    partitions: r.int('OUTBOX_PARTITIONS', { default: 16, min: 1, max: 4096 }),
    adminToken: admin,
    readToken: reader,
    sampleIntervalMs: r.duration('OPS_SAMPLE_INTERVAL', { default: 5_000, min: 100, max: 600_000 }),
    repairMinAgeMs: r.duration('OPS_REPAIR_MIN_AGE', { default: 60_000, min: 0, max: 86_400_000 }),
    logLevel: r.oneOf('LOG_LEVEL', LOG_LEVELS, { default: 'info' }),
    stopTimeoutMs: r.duration('STOP_TIMEOUT', { default: 10_000, min: 100 }),
  };
  r.done();
  return Object.freeze(cfg);
}
