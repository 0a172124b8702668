/**
 * `make dev`: runs the hub on an embedded default. Uses MONGO_URL if set,
 * else MongoDB in Docker when an engine answers, else a local SecantusDB (a
 * single-node replica set: transactions and change streams) whose data lives
 * in .data/secantusdb and whose log stays in .data/secantusdb/server.log
 * (DEV_DB_LOG=1 shows it here too, at INFO).
 * Starts two drainers and prints where to look. Ctrl-C stops everything in
 * order: children run in their own process groups so the terminal's SIGINT
 * reaches only this launcher, which then sends each one SIGTERM (a second
 * Ctrl-C exits at once).
 *
 * The binaries write JSON lines, as in production. On a terminal this launcher
 * passes them through pino-pretty (coloured, local time, without pid and
 * hostname); piped, it hands them on untouched, for tools that read JSON.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import { SignJWT } from 'jose';
import { MongoClient } from 'mongodb';
import pretty from 'pino-pretty';
import { createOutbox, migrateOutbox } from '../../internal/outbox/index.js';
import { binaryPath } from './process.js';
import { dockerReachable, freePort, startSecantus, startTestServer, type TestServer } from './server.js';

const DB = process.env['MONGO_DB'] ?? 'outbox_hub_dev';
/** The demo's process.state topic is compacted (its page reads it from the snapshot); the rest kept a day. Every binary gets it. */
const RETENTION = {
  RETENTION: process.env['RETENTION'] ?? JSON.stringify({ default: { maxAge: '1d' }, topics: [{ match: 'process.state', compact: true }] }),
  RETENTION_INTERVAL: process.env['RETENTION_INTERVAL'] ?? '5s',
};
const DRAINERS = Number(process.env['DEV_DRAINERS'] ?? 2);
const JWT_SECRET = process.env['JWT_SECRET'] ?? randomBytes(32).toString('hex');
const DB_LOG = process.env['DEV_DB_LOG'] === '1';
const PRETTY = process.stdout.isTTY === true;

async function startServer(): Promise<TestServer> {
  if (process.env['MONGO_URL'] || process.env['DOCKER_HOST'] || (await dockerReachable())) return startTestServer();
  const dir = resolve('.data/secantusdb');
  mkdirSync(dir, { recursive: true });
  return startSecantus({ dataDir: dir, detached: true, quiet: !DB_LOG });
}

const server = await startServer();
const client = new MongoClient(server.url);
await client.connect();
await migrateOutbox(client.db(DB));

/** Resolves on `emitter`'s 'close' (never rejects: an error is the emitter's own to report). */
function closed(emitter: EventEmitter): Promise<void> {
  return new Promise((r) => emitter.once('close', () => r()));
}

/**
 * Writes `source`'s log lines to `fd` pretty-printed (other lines as they are). Resolves once
 * all of it is written, so a stop does not cut off the children's last lines.
 */
function prettify(source: Readable | null, fd: 1 | 2): Promise<void> {
  if (!source) return Promise.resolve();
  // Synchronous: several processes share the terminal, and a person reads it; whole lines, in order.
  const out = pretty({
    colorize: pretty.isColorSupported, // false under NO_COLOR or TERM=dumb
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
    destination: fd,
    sync: true,
  });
  source.pipe(out);
  return closed(out);
}

interface Child {
  process: ChildProcess;
  /** Settles once the process has exited and its output is written. */
  done: Promise<unknown>;
}
const children: Child[] = [];
function run(binary: string, env: Record<string, string>): void {
  const child = spawn(process.execPath, [binaryPath(binary)], {
    env: { ...process.env, MONGO_URL: server.url, MONGO_DB: DB, METRICS_HOST: '127.0.0.1', ...RETENTION, ...env },
    stdio: PRETTY ? ['ignore', 'pipe', 'pipe'] : ['ignore', 'inherit', 'inherit'],
    detached: true,
  });
  const done = Promise.all([closed(child), ...(PRETTY ? [prettify(child.stdout, 1), prettify(child.stderr, 2)] : [])]);
  children.push({ process: child, done });
}
const ports: number[] = [];
for (let i = 0; i < DRAINERS; i++) {
  const port = await freePort();
  ports.push(port);
  run('drainer', { METRICS_PORT: String(port), MEMBER_ID: `dev-drainer-${i + 1}` });
}
const gatewayPort = Number(process.env['GATEWAY_PORT'] ?? (await freePort()));
const gatewayMetrics = await freePort();
run('gateway', {
  GATEWAY_HOST: '127.0.0.1',
  GATEWAY_PORT: String(gatewayPort),
  METRICS_PORT: String(gatewayMetrics),
  JWT_SECRET,
  MEMBER_ID: 'dev-gateway-1',
});
const opsPort = Number(process.env['OPS_PORT'] ?? (await freePort()));
const OPS_ADMIN_TOKEN = process.env['OPS_ADMIN_TOKEN'] ?? randomBytes(16).toString('hex');
run('ops', { OPS_HOST: '127.0.0.1', OPS_PORT: String(opsPort), OPS_ADMIN_TOKEN, OPS_SAMPLE_INTERVAL: '2s' });
const demoPort = Number(process.env['DEMO_PORT'] ?? (await freePort()));
run('demo', { DEMO_HOST: '127.0.0.1', DEMO_PORT: String(demoPort), GATEWAY_PUBLIC_URL: `ws://127.0.0.1:${gatewayPort}/ws`, JWT_SECRET });
const token = await new SignJWT({ scopes: 'publish:** subscribe:**' })
  .setProtectedHeader({ alg: 'HS256' })
  .setSubject('dev')
  .setExpirationTime('12h')
  .sign(new TextEncoder().encode(JWT_SECRET));

const outbox = createOutbox(client.db(DB));
const receipt = await outbox.add({ topic: 'dev.hello', key: 'dev', payload: { hello: 'world', at: new Date().toISOString() } });

process.stdout.write(
  [
    '',
    'Outbox Hub dev is running',
    `  database      ${server.backend} at ${server.url} (db ${DB})`,
    ...ports.map((p, i) => `  drainer ${i + 1}     http://127.0.0.1:${p}/metrics  /healthz  /readyz`),
    `  gateway       ws://127.0.0.1:${gatewayPort}/ws  (subprotocol outbox-hub.v1; metrics http://127.0.0.1:${gatewayMetrics}/metrics)`,
    `  dev token     ${token}`,
    `                (12 h, publish:** subscribe:**; HS256 secret in JWT_SECRET=${JWT_SECRET})`,
    `  sample event  ${receipt.id} on dev.hello (see db.events)`,
    `  demo          http://127.0.0.1:${demoPort}/  (live events in the browser; the button writes an order + outbox message)`,
    `  ops           http://127.0.0.1:${opsPort}/  (dashboard; admin token for requeue/replay: ${OPS_ADMIN_TOKEN})`,
    '  Ctrl-C stops everything.',
    '',
  ].join('\n') + '\n',
);

let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) process.exit(130);
  stopping = true;
  await Promise.all(
    children.map(async ({ process: child, done }) => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await done;
    }),
  );
  await client.close();
  await server.stop();
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
