/**
 * Demo service: writes orders and their outbox messages in one transaction
 * (or, on servers without transactions, one after the other with a loud
 * warning), and serves a page that shows live events through the SDK.
 *
 * For demonstrations only: `/token` hands out short-lived subscribe tokens to
 * anyone who asks.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import { envReader } from '../config/index.js';
import type { Health } from '../health/index.js';
import { HubProcess, readHubSettings, type HubSettings } from '../runtime/index.js';
import { closerFor, repeat, type Service } from '../lifecycle/index.js';
import { LOG_LEVELS, type Logger, type LogLevel } from '../log/index.js';
import { createRegistry, healthAnswer } from '../telemetry/index.js';
import { isTransientError, type MongoClient, type ServerCapabilities } from '../mongo/index.js';
import { isOutboxError, type Outbox } from '../outbox/index.js';
import { demoPage } from './page.js';

/** Demo configuration. */
export interface DemoConfig extends HubSettings {
  readonly host: string;
  readonly port: number;
  readonly gatewayUrl: string;
  readonly jwtSecret: string;
  readonly sdkBundle: string;
  readonly logLevel: LogLevel;
  /** How often the simulated processes report their state on `process.state` (0: never). */
  readonly stateIntervalMs: number;
}

/** Reads DEMO_HOST, DEMO_PORT, GATEWAY_PUBLIC_URL, JWT_SECRET, SDK_BUNDLE, DEMO_STATE_INTERVAL and the shared settings. */
export function loadDemoConfig(env: Readonly<Record<string, string | undefined>>): DemoConfig {
  const r = envReader(env);
  const cfg: DemoConfig = {
    ...readHubSettings(r, env),
    host: r.string('DEMO_HOST', { default: '127.0.0.1' }),
    port: r.int('DEMO_PORT', { default: 8090, min: 0, max: 65_535 }),
    gatewayUrl: r.string('GATEWAY_PUBLIC_URL', { pattern: /^wss?:\/\// }),
    jwtSecret: r.string('JWT_SECRET'),
    sdkBundle: r.string('SDK_BUNDLE', { default: 'dist/sdk/outbox-hub-sdk.min.js' }),
    logLevel: r.oneOf('LOG_LEVEL', LOG_LEVELS, { default: 'info' }),
    stateIntervalMs: r.duration('DEMO_STATE_INTERVAL', { default: 2_000, min: 0, max: 3_600_000 }),
  };
  r.done();
  return Object.freeze(cfg);
}

/** The processes the demo pretends to run: each reports its state under its own key (host:name:pid). */
const PROCESSES = ['web-1:api:4121', 'web-2:api:3310', 'worker-1:mailer:977'] as const;

/** Largest order request body accepted. */
const MAX_BODY = 16 * 1024;

/** The demo process. */
export class DemoApp implements Service {
  readonly #cfg: DemoConfig;
  readonly #log: Logger;
  readonly #process: HubProcess;
  #server: Server | undefined;
  #client: MongoClient | undefined;
  #outbox: Outbox | undefined;
  #caps: ServerCapabilities | undefined;
  #bundle: Buffer | undefined;
  readonly #health: Health;

  constructor(cfg: DemoConfig, deps: { log: Logger }) {
    this.#cfg = cfg;
    this.#log = deps.log;
    this.#process = new HubProcess({ log: deps.log, registry: createRegistry('demo') });
    this.#health = this.#process.health;
  }

  get port(): number {
    return (this.#server?.address() as AddressInfo | null)?.port ?? 0;
  }

  async start(): Promise<void> {
    this.#bundle = await readFile(this.#cfg.sdkBundle);
    const p = this.#process;
    // Listen first: /healthz and /readyz answer while the database is still unreachable.
    const server = createServer(
      (req, res) =>
        void this.#route(req, res).catch((err: unknown) => {
          this.#log.error('request failed', { err });
          if (!res.headersSent) res.writeHead(isTransientError(err) ? 503 : 500).end('request failed\n');
        }),
    );
    p.onStop('HTTP server', closerFor(server));
    await new Promise<void>((resolve) => server.listen(this.#cfg.port, this.#cfg.host, () => resolve()));
    this.#server = server;
    p.watchHealth();
    this.#log.info('demo listening', { url: `http://${this.#cfg.host}:${this.port}/` });
    const ports = await p.openPorts(this.#cfg, { appName: 'outbox-hub-demo' });
    if (this.#cfg.stateIntervalMs > 0) {
      // A compacted process.state topic for the page's process table (RETENTION compacts it in make dev).
      const outbox = ports.outbox();
      let beat = 0;
      const report = async (): Promise<void> => {
        beat++;
        await outbox.addMany(
          PROCESSES.map((key, i) => ({
            topic: 'process.state',
            key,
            payload: { status: (beat + i) % 7 === 0 ? 'restarting' : 'up', beat, at: new Date().toISOString() },
          })),
        );
      };
      await report().catch((err: unknown) => this.#log.warn('process state report failed', { err }));
      const reporting = repeat(this.#cfg.stateIntervalMs, p.signal, report, (err) =>
        this.#log.warn('process state report failed', { err }),
      );
      p.onStop('process state reports', () => reporting);
    }
    const caps = ports.caps;
    this.#client = ports.client;
    this.#caps = caps;
    this.#outbox = ports.outbox();
    if (!caps.transactions) {
      this.#log.warn(
        'this server has no multi-document transactions: orders and outbox messages are written one after the other, not atomically',
        { flavor: caps.flavor },
      );
    }
    p.started();
  }

  stop(): Promise<void> {
    return this.#process.stop();
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(demoPage(this.#cfg.gatewayUrl));
    } else if (req.method === 'GET' && path === '/sdk.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(this.#bundle);
    } else if (req.method === 'GET' && path === '/token') {
      const token = await new SignJWT({ scopes: 'subscribe:orders.** subscribe:process.state' })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('demo-page')
        .setExpirationTime('5m')
        .sign(new TextEncoder().encode(this.#cfg.jwtSecret));
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' }).end(token);
    } else if (req.method === 'POST' && path === '/orders') {
      await this.#createOrder(req, res);
    } else if (req.method === 'GET' && (path === '/healthz' || path === '/readyz')) {
      const a = healthAnswer(path, this.#health);
      res.writeHead(a.status, { 'content-type': 'text/plain' }).end(a.body);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  }

  async #createOrder(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = '';
    for await (const chunk of req) {
      body += String(chunk);
      if (body.length > MAX_BODY) return void res.writeHead(413).end('too large\n');
    }
    let input: { item?: unknown; qty?: unknown };
    try {
      input = JSON.parse(body || '{}') as typeof input;
    } catch {
      return void res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'BAD_JSON' }));
    }
    if (typeof input.item !== 'string' || !Number.isSafeInteger(input.qty) || (input.qty as number) < 1) {
      return void res
        .writeHead(400, { 'content-type': 'application/json' })
        .end(JSON.stringify({ error: 'BAD_ORDER', message: 'item (string) and qty (positive integer) are required' }));
    }
    const client = this.#client;
    const outbox = this.#outbox;
    if (!client || !outbox) {
      return void res
        .writeHead(503, { 'content-type': 'application/json' })
        .end(JSON.stringify({ error: 'UNAVAILABLE', message: 'connecting to the database' }));
    }
    const orders = client.db(this.#cfg.mongoDb).collection('demo_orders');
    const order = { _id: crypto.randomUUID(), item: input.item.slice(0, 100), qty: input.qty as number, createdAt: new Date() };
    const message = { topic: 'orders.created', key: order._id, payload: { orderId: order._id, item: order.item, qty: order.qty } };
    const atomic = this.#caps?.transactions ?? false;
    try {
      if (atomic) {
        const session = client.startSession();
        try {
          await session.withTransaction(async () => {
            await orders.insertOne(order as never, { session });
            await outbox.add(message, { session });
          });
        } finally {
          await session.endSession();
        }
      } else {
        await orders.insertOne(order as never);
        await outbox.add(message);
      }
    } catch (err) {
      if (isOutboxError(err))
        return void res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: err.code }));
      throw err;
    }
    res
      .writeHead(201, { 'content-type': 'application/json', 'x-outbox-atomic': String(atomic) })
      .end(JSON.stringify({ orderId: order._id, atomic }));
  }
}
