import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { EnvReader } from '../config/index.js';
import { leaseSettings, type LeaseBackend } from '../lease/index.js';
import { mongoSettings } from '../mongo/index.js';
import { DEFAULT_PARTITIONS, MAX_PARTITIONS } from '../outbox/index.js';
import { readRetention, type RetentionPolicies } from '../retention/index.js';
import { readTracingSettings, type TracingSettings } from '../tracing/index.js';

/**
 * What every binary shares and must agree on, read with one rule everywhere:
 * where the database is, how many partitions the outbox has, where leases live.
 */
export interface HubSettings {
  readonly mongoUrl: string;
  readonly mongoDb: string;
  /** Outbox partition count P: writers, drainers, gateways and ops must agree. */
  readonly partitions: number;
  readonly leaseBackend: LeaseBackend;
  readonly leaseNamespace: string;
  readonly leasePrefix: string;
  /** Values scrubbed from every log line (the database password). */
  readonly secrets: readonly string[];
  /** Event-log retention (RETENTION or RETENTION_FILE): validated by every binary, applied by the drainers. */
  readonly retention: RetentionPolicies;
  /** Span export (the standard OTEL_* variables); off unless an OTLP endpoint is set. */
  readonly tracing?: TracingSettings;
}

/**
 * Reads MONGO_URL, MONGO_DB, OUTBOX_PARTITIONS, LEASE_BACKEND, LEASE_NAMESPACE, LEASE_PREFIX,
 * RETENTION or RETENTION_FILE, and the OpenTelemetry variables (see readTracingSettings).
 */
export function readHubSettings(r: EnvReader, env: Readonly<Record<string, string | undefined>>): HubSettings {
  return {
    ...mongoSettings(r),
    partitions: r.int('OUTBOX_PARTITIONS', { default: DEFAULT_PARTITIONS, min: 1, max: MAX_PARTITIONS }),
    ...leaseSettings(r, env),
    retention: readRetention(r),
    tracing: readTracingSettings(r, env),
  };
}

/** A lease's time to live and renewal interval. */
export interface LeaseTiming {
  readonly leaseTtlMs: number;
  readonly leaseRenewMs: number;
}

/**
 * Reads a TTL and its renewal interval with the one rule every lease follows: a
 * renewal at most every TTL/2 (default TTL/3), so one renewal may fail or be
 * late and the lease still holds.
 */
export function readLeaseTiming(r: EnvReader, names: { ttl: string; renew: string }, defaultTtlMs: number): LeaseTiming {
  const leaseTtlMs = r.duration(names.ttl, { default: defaultTtlMs, min: 1_000, max: 300_000 });
  const leaseRenewMs = r.duration(names.renew, { default: Math.floor(leaseTtlMs / 3), min: 50, max: Math.floor(leaseTtlMs / 2) });
  return { leaseTtlMs, leaseRenewMs };
}

/** MEMBER_ID: this replica's name in leases and presence (default: host, pid and a random suffix). */
export function readMemberId(r: EnvReader): string {
  return r.string('MEMBER_ID', {
    default: `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
    pattern: /^[A-Za-z0-9_.:-]{1,120}$/,
  });
}
