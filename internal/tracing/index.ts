/**
 * Span export for the binaries: OTLP over HTTP when the standard OpenTelemetry
 * variables ask for it, nothing otherwise.
 *
 * Invariants:
 * - Settings are read once with the others ({@link readTracingSettings}); a value
 *   the binaries cannot honour (an unknown sampler, a gRPC protocol) stops the
 *   binary with the usual configuration message, never silently.
 * - Without `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`), or with
 *   `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`, no SDK is loaded and
 *   the hub's spans are the API's no-ops (trace context still flows through).
 * - The SDK packages are optional peers, loaded only when export is on; a binary
 *   asked to export without them stops at start naming what to install.
 * - {@link Tracing.shutdown} flushes what is buffered (bounded) and unregisters
 *   the provider and context manager; nothing of it outlives the process's stop.
 */
import { context, trace } from '@opentelemetry/api';
import type { EnvReader } from '../config/index.js';
import { HubError } from '../errors/index.js';
import type { Logger } from '../log/index.js';

/** Samplers of the OpenTelemetry specification's `OTEL_TRACES_SAMPLER`. */
export const SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;
export type SamplerName = (typeof SAMPLERS)[number];

/** The optional packages span export needs, at the versions the package pins. */
export const TRACING_PACKAGES = [
  '@opentelemetry/sdk-trace@2.12.1',
  '@opentelemetry/exporter-trace-otlp-http@0.223.1',
  '@opentelemetry/resources@2.12.1',
  '@opentelemetry/context-async-hooks@2.12.1',
] as const;

/** What {@link readTracingSettings} read. */
export interface TracingSettings {
  /** An OTLP endpoint is set and export is not disabled. */
  readonly enabled: boolean;
  readonly sampler: SamplerName;
  /** `OTEL_TRACES_SAMPLER_ARG` for the ratio samplers (0..1). */
  readonly ratio: number;
  /** `OTEL_SERVICE_NAME`, else `outbox-hub-<binary>`. */
  readonly serviceName: string | undefined;
}

/** Why tracing could not start. */
export type TracingErrorCode = 'TRACING_UNAVAILABLE';

/** Raised when export is configured but cannot run. */
export class TracingError extends HubError<TracingErrorCode> {}

/**
 * Reads the standard variables: OTEL_SDK_DISABLED, OTEL_TRACES_EXPORTER (`otlp` or
 * `none`), OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
 * OTEL_EXPORTER_OTLP_PROTOCOL (`http/json` or `http/protobuf`: spans are sent as
 * OTLP/HTTP JSON, which every OTLP/HTTP receiver accepts), OTEL_TRACES_SAMPLER,
 * OTEL_TRACES_SAMPLER_ARG and OTEL_SERVICE_NAME. The exporter itself reads the
 * rest (OTEL_EXPORTER_OTLP_HEADERS, ..._TIMEOUT, ..._COMPRESSION) when it starts.
 */
export function readTracingSettings(r: EnvReader, env: Readonly<Record<string, string | undefined>>): TracingSettings {
  const disabled = r.bool('OTEL_SDK_DISABLED', { default: false });
  const exporter = r.oneOf('OTEL_TRACES_EXPORTER', ['otlp', 'none'] as const, { default: 'otlp' });
  const endpoint = env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] || env['OTEL_EXPORTER_OTLP_ENDPOINT'];
  if (endpoint && !/^https?:\/\/[^\s]+$/.test(endpoint)) {
    r.fail(
      env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_ENDPOINT',
      'must be an http(s) URL',
    );
  }
  const protocol = env['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'] || env['OTEL_EXPORTER_OTLP_PROTOCOL'];
  if (protocol && protocol !== 'http/json' && protocol !== 'http/protobuf') {
    r.fail('OTEL_EXPORTER_OTLP_PROTOCOL', `${JSON.stringify(protocol)} is not supported: use http/json or http/protobuf (OTLP over HTTP)`);
  }
  const sampler = r.oneOf('OTEL_TRACES_SAMPLER', SAMPLERS, { default: 'parentbased_always_on' });
  let ratio = 1;
  const arg = env['OTEL_TRACES_SAMPLER_ARG'];
  if (arg !== undefined && arg !== '' && sampler.endsWith('traceidratio')) {
    ratio = Number(arg);
    if (!(ratio >= 0 && ratio <= 1)) r.fail('OTEL_TRACES_SAMPLER_ARG', 'must be a ratio from 0 to 1');
  }
  const serviceName = env['OTEL_SERVICE_NAME'] || undefined;
  return { enabled: !disabled && exporter === 'otlp' && Boolean(endpoint), sampler, ratio, serviceName };
}

/** Span export as started: call {@link shutdown} once, last, when the process stops. */
export interface Tracing {
  readonly enabled: boolean;
  /** Flushes buffered spans (at most `timeoutMs`) and unregisters the provider. */
  shutdown(timeoutMs?: number): Promise<void>;
}

const DISABLED: Tracing = Object.freeze({ enabled: false, shutdown: () => Promise.resolve() });

/** Identity of the process in its spans' resource. */
export interface TracingIdentity {
  /** `drainer`, `gateway`, `ops`...: the default service name is `outbox-hub-<binary>`. */
  readonly binary: string;
  /** `service.instance.id` (the replica's member id). */
  readonly instance?: string;
}

type SdkModules = [
  typeof import('@opentelemetry/sdk-trace'),
  typeof import('@opentelemetry/exporter-trace-otlp-http'),
  typeof import('@opentelemetry/resources'),
  typeof import('@opentelemetry/context-async-hooks'),
];

/**
 * Registers a tracer provider exporting over OTLP/HTTP with a batch processor and
 * the configured sampler, and an AsyncLocalStorage context manager, when
 * `settings.enabled`; else does nothing.
 */
export async function startTracing(settings: TracingSettings, id: TracingIdentity, log: Logger): Promise<Tracing> {
  if (!settings.enabled) return DISABLED;
  const [sdk, otlp, resources, hooks] = await Promise.all([
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/context-async-hooks'),
  ] as const).catch((err: unknown): SdkModules => {
    if ((err as { code?: unknown }).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    throw new TracingError(
      'TRACING_UNAVAILABLE',
      `span export (OTEL_EXPORTER_OTLP_ENDPOINT is set) needs the optional packages ${TRACING_PACKAGES.join(' ')}, ` +
        `which are not installed: run 'npm install ${TRACING_PACKAGES.join(' ')}' next to outbox-hub (the image has them), ` +
        'or unset OTEL_EXPORTER_OTLP_ENDPOINT',
      { cause: err },
    );
  });
  const ratio = new sdk.TraceIdRatioBasedSampler(settings.ratio);
  const samplers: Record<SamplerName, () => import('@opentelemetry/sdk-trace').Sampler> = {
    always_on: () => new sdk.AlwaysOnSampler(),
    always_off: () => new sdk.AlwaysOffSampler(),
    traceidratio: () => ratio,
    parentbased_always_on: () => new sdk.ParentBasedSampler({ root: new sdk.AlwaysOnSampler() }),
    parentbased_always_off: () => new sdk.ParentBasedSampler({ root: new sdk.AlwaysOffSampler() }),
    parentbased_traceidratio: () => new sdk.ParentBasedSampler({ root: ratio }),
  };
  const resource = resources
    .resourceFromAttributes({
      'service.name': `outbox-hub-${id.binary}`,
      'service.namespace': 'outbox-hub',
      ...(id.instance === undefined ? {} : { 'service.instance.id': id.instance }),
    })
    .merge(resources.detectResources({ detectors: [resources.envDetector] }));
  const provider = new sdk.TracerProvider({
    resource,
    sampler: samplers[settings.sampler](),
    spanProcessors: [new sdk.BatchSpanProcessor({ exporter: new otlp.OTLPTraceExporter() })],
  });
  const contextManager = new hooks.AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  trace.setGlobalTracerProvider(provider);
  log.info('exporting spans over OTLP', { sampler: settings.sampler, service: settings.serviceName ?? `outbox-hub-${id.binary}` });
  let stopped: Promise<void> | undefined;
  return {
    enabled: true,
    shutdown: (timeoutMs = 5_000) =>
      (stopped ??= (async () => {
        let timer: NodeJS.Timeout | undefined;
        try {
          // A collector that does not answer must not hold the stop: the flush is bounded.
          await Promise.race([provider.shutdown(), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
        } catch (err) {
          log.warn('flushing spans failed', { err });
        } finally {
          clearTimeout(timer);
          trace.disable();
          context.disable();
        }
      })()),
  };
}
