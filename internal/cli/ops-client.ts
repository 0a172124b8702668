import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { CliError, type CliErrorCode } from './errors.js';

/** Bound on one API request (an export streams as long as it keeps answering). */
const REQUEST_TIMEOUT_MS = 30_000;

type Query = Readonly<Record<string, string | number | boolean | undefined>>;

/** The ops API's error body. */
interface ErrorBody {
  error?: string;
  message?: string;
}

const BY_STATUS: ReadonlyArray<[number, CliErrorCode]> = [
  [400, 'USAGE'],
  [401, 'UNAUTHORIZED'],
  [403, 'REFUSED'],
  [404, 'NOT_FOUND'],
  [409, 'CONFLICT'],
  [503, 'UNAVAILABLE'],
];

/**
 * The ops HTTP API as the dashboard uses it: the same routes, the same bearer
 * tokens (OPS_READ_TOKEN for reads when set, OPS_ADMIN_TOKEN for changes), no
 * database access. Errors become {@link CliError}s that say what to do.
 */
export class OpsClient {
  readonly base: string;
  readonly #token: string | undefined;
  readonly #signal: AbortSignal;

  constructor(base: string, token: string | undefined, signal: AbortSignal) {
    let url: URL;
    try {
      url = new URL(base);
    } catch {
      throw new CliError('USAGE', `bad ops URL ${JSON.stringify(base)}: use http(s)://host:port, e.g. http://localhost:8081`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new CliError('USAGE', `bad ops URL ${JSON.stringify(base)}: it must start with http:// or https://`);
    this.base = url.href.endsWith('/') ? url.href : `${url.href}/`;
    this.#token = token;
    this.#signal = signal;
  }

  get<T>(path: string, query: Query = {}): Promise<T> {
    return this.#json<T>('GET', path, query);
  }

  post<T>(path: string, body?: unknown, query: Query = {}): Promise<T> {
    return this.#json<T>('POST', path, query, body);
  }

  delete<T>(path: string): Promise<T> {
    return this.#json<T>('DELETE', path, {});
  }

  /** The lines of an NDJSON answer, as they arrive (backpressure reaches the server). */
  async *lines(path: string, query: Query = {}): AsyncGenerator<string> {
    const res = await this.#send('GET', path, query, undefined, false);
    if (!res.body) return;
    const rl = createInterface({
      input: Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>),
      crlfDelay: Infinity,
    });
    for await (const line of rl) if (line.trim() !== '') yield line;
  }

  async #json<T>(method: string, path: string, query: Query, body?: unknown): Promise<T> {
    const res = await this.#send(method, path, query, body, true);
    return (await res.json()) as T;
  }

  #url(path: string, query: Query): URL {
    const url = new URL(path.replace(/^\//, ''), this.base);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    return url;
  }

  async #send(method: string, path: string, query: Query, body: unknown, bounded: boolean): Promise<Response> {
    const url = this.#url(path, query);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.#token) headers['authorization'] = `Bearer ${this.#token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: bounded ? AbortSignal.any([this.#signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]) : this.#signal,
      });
    } catch (err) {
      if (this.#signal.aborted) throw new CliError('FAILED', 'interrupted', { cause: err });
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why =
        (err as { name?: string }).name === 'TimeoutError'
          ? `no answer within ${REQUEST_TIMEOUT_MS / 1000}s`
          : (cause?.code ?? cause?.message ?? String(err));
      throw new CliError('UNREACHABLE', `cannot reach ops at ${this.base} (${why}); set --ops or OUTBOX_HUB_OPS_URL`, { cause: err });
    }
    if (res.ok) return res;
    const text = await res.text().catch(() => '');
    let parsed: ErrorBody = {};
    try {
      parsed = JSON.parse(text) as ErrorBody;
    } catch {
      // Not the ops API (a proxy's error page, another service on that port): say what answered.
    }
    const code = BY_STATUS.find(([s]) => s === res.status)?.[1] ?? 'FAILED';
    const hint =
      res.status === 401
        ? '; give the ops token with --ops-token or OUTBOX_HUB_OPS_TOKEN (changes need the admin token)'
        : parsed.error === 'MUTATIONS_DISABLED'
          ? ' (ops runs without OPS_ADMIN_TOKEN)'
          : '';
    const what = parsed.error
      ? `${parsed.message ?? 'refused'} (${parsed.error})`
      : `ops at ${this.base} answered ${method} /${path.replace(/^\//, '')} with HTTP ${res.status} ${res.statusText} (is that the ops API?)`;
    throw new CliError(code, `${what}${hint}`, parsed.error === undefined ? {} : { serverCode: parsed.error });
  }
}
