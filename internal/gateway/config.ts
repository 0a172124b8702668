import { SUPPORTED_ALGORITHMS, type Algorithm, type KeySource } from '../auth/index.js';
import { envReader, type EnvReader } from '../config/index.js';
import { LOG_LEVELS, type LogLevel } from '../log/index.js';
import { readHubSettings, readLeaseTiming, readMemberId, type HubSettings } from '../runtime/index.js';

/** Validated gateway configuration; frozen, built once by {@link loadGatewayConfig}. */
export interface GatewayConfig extends HubSettings {
  readonly host: string;
  readonly port: number;
  readonly metricsHost: string;
  readonly metricsPort: number;
  readonly logLevel: LogLevel;
  readonly instance: string;
  readonly jwt: {
    readonly algorithms: readonly Algorithm[];
    readonly keys: KeySource;
    readonly issuer: string | undefined;
    readonly audience: string | undefined;
    readonly clockToleranceS: number;
  };
  readonly allowedOrigins: readonly string[];
  readonly authTimeoutMs: number;
  readonly maxFrameBytes: number;
  readonly maxPayloadBytes: number;
  readonly maxSubscriptions: number;
  readonly publishRate: number;
  readonly publishBurst: number;
  readonly frameRate: number;
  readonly sendHighWaterBytes: number;
  readonly maxInFlight: number;
  readonly ackTimeoutMs: number;
  readonly maxDeliveries: number;
  readonly redeliveryBaseMs: number;
  readonly maxReplay: number;
  readonly leaseTtlMs: number;
  readonly leaseRenewMs: number;
  readonly pollMinMs: number;
  readonly pollMaxMs: number;
  readonly cursorFlushMs: number;
  /** A PUBLISH not confirmed durable within this is answered UNAVAILABLE (it may still land). */
  readonly publishTimeoutMs: number;
  /** A loop wedged this long makes the process exit (0: never). */
  readonly wedgeExitMs: number;
  /** A log partition waiting this long for a missing sequence is reported as stalled. */
  readonly logStallAfterMs: number;
  readonly stopTimeoutMs: number;
}

/** Named defaults. */
export const GATEWAY_DEFAULTS = Object.freeze({
  port: 8080,
  metricsPort: 9465,
  authTimeoutMs: 5_000,
  maxFrameBytes: 512 * 1024,
  maxPayloadBytes: 256 * 1024,
  maxSubscriptions: 64,
  publishRate: 100,
  publishBurst: 200,
  frameRate: 1_000,
  sendHighWaterBytes: 4 * 1024 * 1024,
  maxInFlight: 100,
  ackTimeoutMs: 30_000,
  maxDeliveries: 5,
  redeliveryBaseMs: 500,
  maxReplay: 10_000,
  leaseTtlMs: 10_000,
  pollMinMs: 10,
  pollMaxMs: 250,
  cursorFlushMs: 200,
  logStallAfterMs: 30_000,
  publishTimeoutMs: 10_000,
  wedgeExitMs: 120_000,
  stopTimeoutMs: 20_000,
  jwksCacheMaxAgeMs: 60_000,
});

function keySource(r: EnvReader): KeySource {
  const secret = r.string('JWT_SECRET', { required: false });
  const pem = r.string('JWT_PUBLIC_KEY', { required: false });
  const pemFile = r.string('JWT_PUBLIC_KEY_FILE', { required: false });
  const jwks = r.string('JWKS_URL', { required: false, pattern: /^https?:\/\// });
  const timeoutMs = r.duration('JWKS_TIMEOUT', { default: 5_000, min: 100, max: 60_000 });
  const cooldownMs = r.duration('JWKS_COOLDOWN', { default: 30_000, min: 0, max: 3_600_000 });
  // Bounds how long a key removed from the JWKS still verifies new tokens.
  const cacheMaxAgeMs = r.duration('JWKS_CACHE_MAX_AGE', { default: GATEWAY_DEFAULTS.jwksCacheMaxAgeMs, min: 100, max: 3_600_000 });
  const given = [secret, pem, pemFile, jwks].filter((v) => v !== '').length;
  if (given !== 1) r.fail('JWT_SECRET', 'set exactly one of JWT_SECRET, JWT_PUBLIC_KEY, JWT_PUBLIC_KEY_FILE, JWKS_URL');
  if (secret) return { kind: 'secret', secret };
  // PEM in an environment variable often arrives with literal \n sequences.
  if (pem) return { kind: 'pem', pem: pem.replace(/\\n/g, '\n') };
  if (pemFile) return { kind: 'pem-file', path: pemFile };
  return { kind: 'jwks', url: jwks, timeoutMs, cooldownMs, cacheMaxAgeMs };
}

/**
 * Reads the gateway's environment; throws a `ConfigError` naming every bad
 * variable. Key variables: MONGO_URL, GATEWAY_PORT, JWT_ALGORITHMS and one of
 * JWT_SECRET / JWT_PUBLIC_KEY / JWT_PUBLIC_KEY_FILE / JWKS_URL.
 */
export function loadGatewayConfig(env: Readonly<Record<string, string | undefined>>): GatewayConfig {
  const r = envReader(env);
  const algText = r.string('JWT_ALGORITHMS', { default: 'HS256' });
  const algorithms = algText
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  const unknown = algorithms.filter((a) => !(SUPPORTED_ALGORITHMS as readonly string[]).includes(a));
  if (unknown.length > 0 || algorithms.length === 0)
    r.fail('JWT_ALGORITHMS', `must list algorithms from ${SUPPORTED_ALGORITHMS.join(', ')}, got ${JSON.stringify(algText)}`);
  const keys = keySource(r);
  const origins = r.string('ALLOWED_ORIGINS', { required: false });
  const hub = readHubSettings(r, env);
  const cfg: GatewayConfig = {
    ...hub,
    secrets: [...hub.secrets, ...(keys.kind === 'secret' ? [keys.secret] : [])],
    host: r.string('GATEWAY_HOST', { default: '0.0.0.0' }),
    port: r.int('GATEWAY_PORT', { default: GATEWAY_DEFAULTS.port, min: 0, max: 65_535 }),
    metricsHost: r.string('METRICS_HOST', { default: '0.0.0.0' }),
    metricsPort: r.int('METRICS_PORT', { default: GATEWAY_DEFAULTS.metricsPort, min: 0, max: 65_535 }),
    logLevel: r.oneOf('LOG_LEVEL', LOG_LEVELS, { default: 'info' }),
    instance: readMemberId(r),
    jwt: Object.freeze({
      algorithms: algorithms as Algorithm[],
      keys,
      issuer: r.string('JWT_ISSUER', { required: false }) || undefined,
      audience: r.string('JWT_AUDIENCE', { required: false }) || undefined,
      clockToleranceS: r.int('JWT_CLOCK_TOLERANCE_SECONDS', { default: 30, min: 0, max: 300 }),
    }),
    allowedOrigins: Object.freeze(
      origins
        ? origins
            .split(',')
            .map((o) => o.trim())
            .filter(Boolean)
        : [],
    ),
    authTimeoutMs: r.duration('AUTH_TIMEOUT', { default: GATEWAY_DEFAULTS.authTimeoutMs, min: 100, max: 120_000 }),
    maxFrameBytes: r.int('MAX_FRAME_BYTES', { default: GATEWAY_DEFAULTS.maxFrameBytes, min: 1024, max: 16 * 1024 * 1024 }),
    maxPayloadBytes: r.int('MAX_PAYLOAD_BYTES', { default: GATEWAY_DEFAULTS.maxPayloadBytes, min: 16, max: 15 * 1024 * 1024 }),
    maxSubscriptions: r.int('MAX_SUBSCRIPTIONS', { default: GATEWAY_DEFAULTS.maxSubscriptions, min: 1, max: 10_000 }),
    publishRate: r.int('PUBLISH_RATE', { default: GATEWAY_DEFAULTS.publishRate, min: 1, max: 1_000_000 }),
    publishBurst: r.int('PUBLISH_BURST', { default: GATEWAY_DEFAULTS.publishBurst, min: 1, max: 1_000_000 }),
    frameRate: r.int('FRAME_RATE', { default: GATEWAY_DEFAULTS.frameRate, min: 1, max: 1_000_000 }),
    sendHighWaterBytes: r.int('SEND_HIGH_WATER_BYTES', { default: GATEWAY_DEFAULTS.sendHighWaterBytes, min: 1024 }),
    maxInFlight: r.int('MAX_IN_FLIGHT', { default: GATEWAY_DEFAULTS.maxInFlight, min: 1, max: 10_000 }),
    ackTimeoutMs: r.duration('ACK_TIMEOUT', { default: GATEWAY_DEFAULTS.ackTimeoutMs, min: 50, max: 3_600_000 }),
    maxDeliveries: r.int('MAX_DELIVERIES', { default: GATEWAY_DEFAULTS.maxDeliveries, min: 1, max: 1_000 }),
    redeliveryBaseMs: r.duration('REDELIVERY_BASE', { default: GATEWAY_DEFAULTS.redeliveryBaseMs, min: 1, max: 600_000 }),
    maxReplay: r.int('MAX_REPLAY', { default: GATEWAY_DEFAULTS.maxReplay, min: 1, max: 1_000_000 }),
    ...readLeaseTiming(r, { ttl: 'GROUP_LEASE_TTL', renew: 'GROUP_LEASE_RENEW_INTERVAL' }, GATEWAY_DEFAULTS.leaseTtlMs),
    pollMinMs: r.duration('TAIL_POLL_MIN', { default: GATEWAY_DEFAULTS.pollMinMs, min: 1, max: 10_000 }),
    pollMaxMs: r.duration('TAIL_POLL_MAX', { default: GATEWAY_DEFAULTS.pollMaxMs, min: 1, max: 60_000 }),
    cursorFlushMs: r.duration('CURSOR_FLUSH_INTERVAL', { default: GATEWAY_DEFAULTS.cursorFlushMs, min: 10, max: 60_000 }),
    publishTimeoutMs: r.duration('PUBLISH_TIMEOUT', { default: GATEWAY_DEFAULTS.publishTimeoutMs, min: 100, max: 120_000 }),
    wedgeExitMs: r.duration('WEDGE_EXIT_AFTER', { default: GATEWAY_DEFAULTS.wedgeExitMs, min: 0 }),
    logStallAfterMs: r.duration('LOG_STALL_AFTER', { default: GATEWAY_DEFAULTS.logStallAfterMs, min: 100, max: 3_600_000 }),
    stopTimeoutMs: r.duration('STOP_TIMEOUT', { default: GATEWAY_DEFAULTS.stopTimeoutMs, min: 100 }),
  };
  r.done();
  return Object.freeze(cfg);
}
