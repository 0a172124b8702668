import { setTimeout as sleep } from 'node:timers/promises';
import { MongoClient } from 'mongodb';
import { MongoHelperError } from './errors.js';

/**
 * Client settings every binary uses: fail fast enough that callers get
 * `UNAVAILABLE` in seconds, and never wait forever on a server that stopped
 * answering (a frozen server keeps its sockets open).
 */
export const CLIENT_TIMEOUTS = Object.freeze({
  serverSelectionTimeoutMS: 5_000,
  connectTimeoutMS: 5_000,
  socketTimeoutMS: 30_000,
  heartbeatFrequencyMS: 2_000,
});

/** Options of {@link connectMongo}. */
export interface ConnectOptions {
  appName: string;
  signal?: AbortSignal;
  serverSelectionTimeoutMS?: number;
  maxPoolSize?: number;
  /** Keep trying (with backoff up to 5 s) while the server does not answer; told each failure. */
  retry?: { onRetry(err: unknown, attempt: number): void };
}

/**
 * Connects and verifies the server answers. Honours `signal` while connecting.
 * With `retry`, waits for an unreachable server for as long as it takes; an
 * unresolvable host fails at once with `UNKNOWN_HOST` either way.
 */
export async function connectMongo(url: string, options: ConnectOptions): Promise<MongoClient> {
  for (let attempt = 1; ; attempt++) {
    const client = new MongoClient(url, {
      appName: options.appName,
      ...CLIENT_TIMEOUTS,
      ...(options.serverSelectionTimeoutMS === undefined ? {} : { serverSelectionTimeoutMS: options.serverSelectionTimeoutMS }),
      ...(options.maxPoolSize === undefined ? {} : { maxPoolSize: options.maxPoolSize }),
    });
    const onAbort = (): void => void client.close();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await client.connect();
      await client.db('admin').command({ ping: 1 });
      return client;
    } catch (err) {
      await client.close().catch(() => undefined); // closing a client that never connected: nothing to lose
      const host = unknownHost(err);
      if (host) throw new MongoHelperError('UNKNOWN_HOST', `MONGO_URL names a host that does not resolve: ${host}`, { cause: err });
      if (!options.retry || options.signal?.aborted) {
        throw new MongoHelperError('CONNECT_FAILED', `cannot connect to MongoDB: ${(err as Error).message}`, { cause: err });
      }
      options.retry.onRetry(err, attempt);
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
    try {
      await sleep(Math.min(5_000, 250 * 2 ** Math.min(attempt, 5)), undefined, { signal: options.signal });
    } catch (err) {
      throw new MongoHelperError('CONNECT_FAILED', 'aborted while waiting for the database', { cause: err });
    }
  }
}

/** The host a server-selection failure could not resolve, if that is why it failed. */
function unknownHost(err: unknown): string | undefined {
  const servers = (err as { reason?: { servers?: Map<string, { error?: { cause?: { code?: unknown } } }> } }).reason?.servers;
  for (const [host, d] of servers ?? []) if (d.error?.cause?.code === 'ENOTFOUND') return host;
  return undefined;
}
