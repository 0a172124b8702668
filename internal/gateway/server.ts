import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { WebSocketServer, type WebSocket } from 'ws';
import { closerFor } from '../lifecycle/index.js';
import type { Logger } from '../log/index.js';
import { Connection, type ConnectionDeps } from './connection.js';
import { CloseCode, PROTOCOL } from '../protocol/index.js';

/** Heartbeat period: peers that miss one ping are dropped. */
const HEARTBEAT_MS = 30_000;

type ServerState = 'idle' | 'listening' | 'draining' | 'closed';

/**
 * The WebSocket endpoint (`/ws`). States: idle -> listening -> draining ->
 * closed. Draining refuses new upgrades and closes every client with 1001.
 */
export class GatewayServer {
  readonly #d: ConnectionDeps;
  readonly #log: Logger;
  readonly #connections = new Map<string, Connection>();
  #closeHttp: (() => Promise<void>) | undefined;
  #http: Server | undefined;
  #wss: WebSocketServer | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #state: ServerState = 'idle';
  #stopped: Promise<void> | undefined;

  constructor(deps: ConnectionDeps) {
    this.#d = deps;
    this.#log = deps.log;
  }

  get port(): number {
    return (this.#http?.address() as AddressInfo | null)?.port ?? 0;
  }

  get connections(): number {
    return this.#connections.size;
  }

  async start(): Promise<void> {
    if (this.#state !== 'idle') return;
    const { config } = this.#d;
    const wss = new WebSocketServer({
      noServer: true,
      maxPayload: config.maxFrameBytes,
      perMessageDeflate: false,
      handleProtocols: (protocols) => (protocols.has(PROTOCOL) ? PROTOCOL : false),
    });
    this.#wss = wss;
    const http = createServer((req, res) => {
      res
        .writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' })
        .end(`connect with WebSocket to /ws (subprotocol ${PROTOCOL})\n`);
    });
    this.#http = http;
    this.#closeHttp = closerFor(http);
    http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      const refuse = (status: number, text: string): void => {
        socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      };
      if (this.#state !== 'listening') return refuse(503, 'Service Unavailable');
      if ((req.url ?? '').split('?')[0] !== '/ws') return refuse(404, 'Not Found');
      // The subprotocol is the protocol version: a client must ask for one we speak.
      const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
      if (!offered.includes(PROTOCOL)) return refuse(400, 'Bad Request');
      const origin = req.headers.origin;
      if (config.allowedOrigins.length > 0 && (origin === undefined || !config.allowedOrigins.includes(origin)))
        return refuse(403, 'Forbidden');
      wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, socket));
    });
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(config.port, config.host, () => {
        http.off('error', reject);
        resolve();
      });
    });
    this.#heartbeat = setInterval(() => {
      for (const c of this.#connections.values()) {
        if (!c.alive) c.terminate();
        else c.ping();
      }
    }, HEARTBEAT_MS);
    this.#state = 'listening';
    this.#log.info('gateway listening', { port: this.port, path: '/ws', protocol: PROTOCOL });
  }

  #accept(ws: WebSocket, socket: Socket): void {
    const id = randomBytes(6).toString('hex');
    const conn = new Connection(id, ws, this.#d, socket);
    this.#connections.set(id, conn);
    ws.once('close', () => this.#connections.delete(id));
    conn.start();
  }

  /** Stops accepting, closes every client with the shutdown code and releases the port. */
  stop(): Promise<void> {
    this.#stopped ??= this.#shutdown();
    return this.#stopped;
  }

  async #shutdown(): Promise<void> {
    if (this.#state === 'idle') {
      this.#state = 'closed';
      return;
    }
    this.#state = 'draining';
    clearInterval(this.#heartbeat);
    const closing = [...this.#connections.values()];
    for (const c of closing) c.close(CloseCode.SHUTTING_DOWN, 'server shutting down');
    // Give clients a moment to receive the close frame, then cut whatever is left.
    const deadline = Date.now() + 2_000;
    while (this.#connections.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const c of this.#connections.values()) c.terminate();
    this.#connections.clear();
    await new Promise<void>((resolve) => {
      this.#wss?.close(() => resolve());
    });
    await this.#closeHttp?.();
    this.#state = 'closed';
  }
}
