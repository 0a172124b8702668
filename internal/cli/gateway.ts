import { createClient, type HubClient, type HubClientError } from '../sdk/index.js';
import { CliError } from './errors.js';

/** How long the first connection and AUTH may take before the command gives up. */
const CONNECT_TIMEOUT_MS = 10_000;

/** A connected, authenticated SDK client, and a promise that rejects when it fails for good. */
export interface GatewaySession {
  readonly client: HubClient;
  /** Rejects with a {@link CliError} when the session cannot go on (the token refused on a reconnect). */
  readonly failed: Promise<never>;
  /** Errors the gateway sends outside any request (`REPLAY_TRUNCATED`, `SUBSCRIPTION_REVOKED`). */
  onNotice(handler: (err: HubClientError) => void): void;
  close(): Promise<void>;
}

/**
 * Opens the project's own SDK against the gateway with `token`, as any
 * application would. A command line must not retry forever: the first
 * connection failing, or the token being refused, ends the command with a
 * message (the SDK itself would keep reconnecting).
 */
export async function openGateway(url: string, token: string, signal: AbortSignal): Promise<GatewaySession> {
  if (!/^wss?:\/\/./.test(url))
    throw new CliError('USAGE', `bad gateway URL ${JSON.stringify(url)}: use ws(s)://host:port/ws, e.g. ws://localhost:8080/ws`);
  let ready = false;
  let fail: (err: CliError) => void = () => undefined;
  const failed = new Promise<never>((_, reject) => (fail = reject));
  // Nobody may be waiting on it yet: a rejection is handled where it is awaited.
  failed.catch(() => undefined);
  let notice: (err: HubClientError) => void = () => undefined;
  const client = createClient({
    url,
    getToken: () => token,
    signal,
    reconnect: { initialDelayMs: 250, maxDelayMs: 2_000 },
    requestTimeoutMs: CONNECT_TIMEOUT_MS,
    publishRetryMs: 5_000,
    onStateChange: (state) => {
      if (state === 'reconnecting' && !ready)
        fail(new CliError('UNREACHABLE', `cannot reach the gateway at ${url}; set --gateway or OUTBOX_HUB_GATEWAY_URL`));
    },
    onError: (err) => {
      if (err.code === 'AUTH_FAILED') {
        fail(
          new CliError('UNAUTHORIZED', `the gateway refused the token: ${err.message} (give a token with --token or OUTBOX_HUB_TOKEN)`, {
            serverCode: err.code,
          }),
        );
      } else notice(err);
    },
  });
  const timer = setTimeout(
    () => fail(new CliError('UNREACHABLE', `the gateway at ${url} did not answer within ${CONNECT_TIMEOUT_MS / 1000}s`)),
    CONNECT_TIMEOUT_MS,
  );
  try {
    await Promise.race([client.ready(), failed]);
    ready = true;
  } catch (err) {
    await client.close();
    if (err instanceof CliError) throw err;
    if (signal.aborted) throw new CliError('FAILED', 'interrupted', { cause: err });
    throw new CliError('UNREACHABLE', `cannot connect to the gateway at ${url}: ${String(err)}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
  return {
    client,
    failed,
    onNotice: (h) => void (notice = h),
    close: () => client.close(),
  };
}
