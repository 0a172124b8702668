import { AUTH_ERROR_CODES } from '../auth/index.js';
import { CLIENT_OPS, CloseCode } from '../protocol/index.js';
import { Counter, Gauge, Histogram, type Registry } from '../telemetry/index.js';

/** The gateway's metrics, on the binary's own registry. */
export interface GatewayMetrics {
  connections: Gauge;
  authFailures: Counter<'reason'>;
  aclDenials: Counter<'op'>;
  framesIn: Counter<'op'>;
  framesOut: Counter<'op'>;
  publishToDeliver: Histogram;
  redeliveries: Counter<'group'>;
  deadLetters: Counter<'group'>;
  consumerLag: Gauge<'group' | 'partition'>;
  trimmedSkips: Counter<'group'>;
  closes: Counter<'code'>;
  logStalledPartitions: Gauge;
  logMissingSeq: Gauge<'partition'>;
  slowConsumerBuffered: Histogram;
}

/**
 * Label values known before anything happens, exported at 0 from the start: a
 * series that first appears already at 1 is invisible to `rate()` and
 * `increase()`, so its first occurrence would never show nor alert.
 */
const KNOWN_LABELS = {
  /** Why AUTH failed: a verifier code, or a refreshed token naming another subject. */
  authReasons: [...AUTH_ERROR_CODES, 'SUBJECT_CHANGED'],
  /** Requests the topic ACL can refuse. */
  aclOps: ['SUBSCRIBE', 'PUBLISH'],
  /** Client frames: every op, and frames that did not parse. */
  framesIn: [...CLIENT_OPS, 'invalid'],
  framesOut: ['OK', 'ERR', 'EVENT'],
  /** Codes the gateway closes with itself (ws closes oversized frames with 1009 on its own, uncounted). */
  closeCodes: Object.values(CloseCode).filter((c) => c !== CloseCode.MESSAGE_TOO_LARGE),
} as const;

/** Registers the gateway metrics on `registry`, labelled counters at 0 for their known label values. */
export function createGatewayMetrics(registry: Registry): GatewayMetrics {
  const metrics = registerGatewayMetrics(registry);
  for (const reason of KNOWN_LABELS.authReasons) metrics.authFailures.inc({ reason }, 0);
  for (const op of KNOWN_LABELS.aclOps) metrics.aclDenials.inc({ op }, 0);
  for (const op of KNOWN_LABELS.framesIn) metrics.framesIn.inc({ op }, 0);
  for (const op of KNOWN_LABELS.framesOut) metrics.framesOut.inc({ op }, 0);
  for (const code of KNOWN_LABELS.closeCodes) metrics.closes.inc({ code: String(code) }, 0);
  return metrics;
}

function registerGatewayMetrics(registry: Registry): GatewayMetrics {
  const registers = [registry];
  return {
    connections: new Gauge({ name: 'gateway_connections', help: 'Open WebSocket connections', registers }),
    authFailures: new Counter({
      name: 'gateway_auth_failures_total',
      help: 'Refused authentications by reason',
      labelNames: ['reason'],
      registers,
    }),
    aclDenials: new Counter({ name: 'gateway_acl_denials_total', help: 'Requests refused by topic ACL', labelNames: ['op'], registers }),
    framesIn: new Counter({ name: 'gateway_frames_in_total', help: 'Client frames by op', labelNames: ['op'], registers }),
    framesOut: new Counter({ name: 'gateway_frames_out_total', help: 'Server frames by op', labelNames: ['op'], registers }),
    publishToDeliver: new Histogram({
      name: 'gateway_publish_to_deliver_seconds',
      help: 'Time from outbox write to delivery on a socket',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    redeliveries: new Counter({
      name: 'gateway_redeliveries_total',
      help: 'Group events delivered again (nack or ack timeout)',
      labelNames: ['group'],
      registers,
    }),
    deadLetters: new Counter({
      name: 'gateway_dead_letters_total',
      help: 'Group events moved to dead letters',
      labelNames: ['group'],
      registers,
    }),
    consumerLag: new Gauge({
      name: 'gateway_consumer_lag_events',
      help: 'Events between a group cursor and the partition head',
      labelNames: ['group', 'partition'],
      registers,
    }),
    trimmedSkips: new Counter({
      name: 'gateway_group_trimmed_skips_total',
      help: 'Times a consumer group skipped events retention trimmed before the group read them',
      labelNames: ['group'],
      registers,
    }),
    closes: new Counter({
      name: 'gateway_closes_total',
      help: 'Connections closed by the server, by close code',
      labelNames: ['code'],
      registers,
    }),
    logStalledPartitions: new Gauge({
      name: 'gateway_log_stalled_partitions',
      help: 'Log partitions this gateway cannot follow past a missing sequence (longer than LOG_STALL_AFTER)',
      registers,
    }),
    logMissingSeq: new Gauge({
      name: 'gateway_log_missing_seq',
      help: 'The missing sequence a stalled log partition waits for',
      labelNames: ['partition'],
      registers,
    }),
    slowConsumerBuffered: new Histogram({
      name: 'gateway_slow_consumer_buffered_bytes',
      help: 'Bytes the gateway held queued for a connection when it closed it as a slow consumer',
      buckets: [64, 256, 1_024, 4_096, 16_384, 65_536].map((k) => k * 1024),
      registers,
    }),
  };
}
