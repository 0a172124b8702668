/**
 * A real Jaeger v2 (built by `make tracing-tools` from the Go module proxy) for the
 * tracing tests: OTLP/HTTP in, in-memory storage, its query API out, on loopback
 * ports of its own. A `describe` that needs it is skipped loudly when it is not built.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './server.js';

/** The Jaeger binary `make tracing-tools` links (JAEGER_BIN overrides). */
export function jaegerPath(): string {
  return process.env['JAEGER_BIN'] ?? resolve('.tools/bin/jaeger');
}

/** `describe`, or `describe.skip` with a message on stderr naming what is missing (never a pass). */
export function describeTracing(name: string, fn: () => void): void {
  if (existsSync(jaegerPath())) return describe(name, fn);
  process.stderr.write(`\n  SKIPPED (not built: ${jaegerPath()}; run 'make tracing-tools'): ${name}\n`);
  describe.skip(name, fn);
}

/** One span as Jaeger's API v3 returns it (OTLP JSON), with its process's service name. */
export interface StoredSpan {
  readonly service: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  readonly kind: number;
  readonly links: ReadonlyArray<{ traceId: string; spanId: string }>;
  readonly attributes: Readonly<Record<string, unknown>>;
  readonly status: { code?: number; message?: string };
}

/** A running Jaeger. */
export interface Jaeger {
  /** `OTEL_EXPORTER_OTLP_ENDPOINT` for the processes under test. */
  readonly otlpEndpoint: string;
  readonly queryUrl: string;
  /** The spans of trace `traceId` (hex), or [] while Jaeger has none. */
  trace(traceId: string): Promise<StoredSpan[]>;
  /** Recent traces of `service` whose root or any span is named `operation`. */
  traceIds(service: string, operation: string): Promise<string[]>;
  stop(): Promise<void>;
  readonly log: string[];
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
}

function value(v: OtlpValue | undefined): unknown {
  if (!v) return undefined;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.boolValue !== undefined) return v.boolValue;
  return v.doubleValue;
}

function attrs(list: Array<{ key: string; value?: OtlpValue }> | undefined): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map((a) => [a.key, value(a.value)]));
}

/** Ids as hex: Jaeger's HTTP gateway may write OTLP bytes fields as base64. */
function hexId(id: string | undefined, bytes: number): string {
  if (!id) return '';
  if (new RegExp(`^[0-9a-f]{${bytes * 2}}$`).test(id)) return id;
  return Buffer.from(id, 'base64').toString('hex');
}

/** Starts Jaeger with in-memory storage on free loopback ports; resolves once its health check answers. */
export async function startJaeger(): Promise<Jaeger> {
  const [otlp, query, queryGrpc, health] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const dir = mkdtempSync(join(tmpdir(), 'jaeger-'));
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    `service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: []
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    traces:
      level: none
    logs:
      level: warn
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:${health}
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: 127.0.0.1:${query}
    grpc:
      endpoint: 127.0.0.1:${queryGrpc}
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:${otlp}
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
`,
  );
  const child: ChildProcess = spawn(jaegerPath(), ['--config', `file:${config}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log: string[] = [];
  child.stdout?.on('data', (b: Buffer) => log.push(b.toString()));
  child.stderr?.on('data', (b: Buffer) => log.push(b.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const queryUrl = `http://127.0.0.1:${query}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`jaeger exited (${child.exitCode}): ${log.join('').slice(-2000)}`);
    const ok = await fetch(`http://127.0.0.1:${health}/status`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`jaeger not healthy within 30 s: ${log.join('').slice(-2000)}`);
    await sleep(100);
  }
  return {
    otlpEndpoint: `http://127.0.0.1:${otlp}`,
    queryUrl,
    log,
    async trace(traceId) {
      const res = await fetch(`${queryUrl}/api/v3/traces/${traceId}`);
      if (res.status === 404) return [];
      if (!res.ok) throw new Error(`GET /api/v3/traces/${traceId}: ${res.status} ${await res.text()}`);
      const body = (await res.json()) as {
        result?: {
          resourceSpans?: Array<{
            resource?: { attributes?: Array<{ key: string; value?: OtlpValue }> };
            scopeSpans?: Array<{
              spans?: Array<{
                traceId: string;
                spanId: string;
                parentSpanId?: string;
                name: string;
                kind?: number | string;
                links?: Array<{ traceId: string; spanId: string }>;
                attributes?: Array<{ key: string; value?: OtlpValue }>;
                status?: { code?: number | string; message?: string };
              }>;
            }>;
          }>;
        };
      };
      const out: StoredSpan[] = [];
      for (const rs of body.result?.resourceSpans ?? []) {
        const name = attrs(rs.resource?.attributes)['service.name'];
        const service = typeof name === 'string' ? name : '';
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) {
            out.push({
              service,
              traceId: hexId(s.traceId, 16),
              spanId: hexId(s.spanId, 8),
              parentSpanId: hexId(s.parentSpanId, 8),
              name: s.name,
              kind: typeof s.kind === 'number' ? s.kind : (KINDS[String(s.kind)] ?? 0),
              links: (s.links ?? []).map((l) => ({ traceId: hexId(l.traceId, 16), spanId: hexId(l.spanId, 8) })),
              attributes: attrs(s.attributes),
              status: {
                code: typeof s.status?.code === 'number' ? s.status.code : (STATUS[String(s.status?.code)] ?? 0),
                ...(s.status?.message ? { message: s.status.message } : {}),
              },
            });
          }
        }
      }
      return out;
    },
    async traceIds(service, operation) {
      const q = new URLSearchParams({ service, operation, limit: '100', lookback: '1h' });
      const res = await fetch(`${queryUrl}/api/traces?${q.toString()}`);
      if (!res.ok) return [];
      const body = (await res.json()) as { data?: Array<{ traceID: string }> | null };
      return (body.data ?? []).map((t) => t.traceID);
    },
    async stop() {
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(10_000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const KINDS: Readonly<Record<string, number>> = {
  SPAN_KIND_INTERNAL: 1,
  SPAN_KIND_SERVER: 2,
  SPAN_KIND_CLIENT: 3,
  SPAN_KIND_PRODUCER: 4,
  SPAN_KIND_CONSUMER: 5,
};
const STATUS: Readonly<Record<string, number>> = { STATUS_CODE_UNSET: 0, STATUS_CODE_OK: 1, STATUS_CODE_ERROR: 2 };
