/** Runs a drainer and a gateway in this process against the test server, on loopback and free ports. */
import { SignJWT } from 'jose';
import { DrainerApp, loadDrainerConfig } from '../../internal/drainer/index.js';
import { GatewayApp, loadGatewayConfig } from '../../internal/gateway/index.js';
import { createLogger, type Logger } from '../../internal/log/index.js';
import { createRegistry } from '../../internal/telemetry/index.js';

/** The HS256 secret test gateways verify with. */
export const TEST_SECRET = 'outbox-hub-test-secret-at-least-32-bytes-long';

/** A signed test token for `sub` with `claims` (scopes, policy) expiring in `ttlS` seconds. */
export async function testToken(
  claims: Record<string, unknown>,
  options: { sub?: string; ttlS?: number; secret?: string } = {},
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(options.sub ?? 'tester')
    .setExpirationTime(Math.floor(Date.now() / 1000) + (options.ttlS ?? 300))
    .sign(new TextEncoder().encode(options.secret ?? TEST_SECRET));
}

/** A token that may publish and subscribe everything. */
export function rootToken(ttlS = 300): Promise<string> {
  return testToken({ scopes: 'publish:** subscribe:**' }, { ttlS });
}

/** A running in-process hub. */
export interface TestHub {
  /** Database name. */
  readonly db: string;
  readonly gateway: GatewayApp;
  readonly drainer: DrainerApp | undefined;
  readonly port: number;
  stop(): Promise<void>;
}

function quietLogger(): Logger {
  return createLogger({ level: process.env['TEST_LOG_LEVEL'] === 'debug' ? 'debug' : 'error', write: (l) => void process.stderr.write(l) });
}

function baseEnv(url: string, db: string): Record<string, string> {
  return { MONGO_URL: url, MONGO_DB: db, OUTBOX_PARTITIONS: '4', METRICS_HOST: '127.0.0.1', METRICS_PORT: '0', LOG_LEVEL: 'error' };
}

/** Starts a gateway alone on `db` (e.g. to restart one on a fixed port). */
export async function startGateway(url: string, db: string, env: Record<string, string> = {}): Promise<GatewayApp> {
  const gateway = new GatewayApp(
    loadGatewayConfig({
      ...baseEnv(url, db),
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_PORT: '0',
      JWT_SECRET: TEST_SECRET,
      TAIL_POLL_MAX: '30ms',
      GROUP_LEASE_TTL: '2s',
      GROUP_LEASE_RENEW_INTERVAL: '200ms',
      CURSOR_FLUSH_INTERVAL: '50ms',
      ...env,
    }),
    { log: quietLogger(), registry: createRegistry('gateway') },
  );
  await gateway.start();
  return gateway;
}

/** Starts a drainer alone on `db`. */
export async function startDrainer(url: string, db: string, env: Record<string, string> = {}): Promise<DrainerApp> {
  const drainer = new DrainerApp(
    loadDrainerConfig({ ...baseEnv(url, db), POLL_MAX: '30ms', LEASE_TTL: '2s', LEASE_RENEW_INTERVAL: '200ms', ...env }),
    {
      log: quietLogger(),
      registry: createRegistry('drainer'),
    },
  );
  await drainer.start();
  return drainer;
}

/** Starts a gateway (and a drainer unless `drainer: false`) on `db`. */
export async function startHub(
  url: string,
  db: string,
  env: Record<string, string> = {},
  options: { drainer?: boolean } = {},
): Promise<TestHub> {
  const drainer = options.drainer === false ? undefined : await startDrainer(url, db, env);
  const gateway = await startGateway(url, db, env);
  return {
    db,
    gateway,
    drainer,
    port: gateway.port,
    async stop() {
      await gateway.stop();
      await drainer?.stop();
    },
  };
}
