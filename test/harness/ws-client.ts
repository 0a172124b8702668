/** A small WebSocket test client for protocol v1 (deliberately not the SDK: it sends raw frames). */
import WebSocket from 'ws';
import { PROTOCOL, type ServerFrame } from '../../internal/gateway/index.js';

type EventFrame = Extract<ServerFrame, { op: 'EVENT' }>;

/** A connected test client. */
export class TestClient {
  readonly ws: WebSocket;
  readonly frames: ServerFrame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  #next = 0;
  readonly #waiters = new Set<{ match: (f: ServerFrame) => boolean; resolve: (f: ServerFrame) => void; cancel: () => void }>();

  private constructor(ws: WebSocket) {
    this.ws = ws;
    this.closed = new Promise((resolve) =>
      ws.once('close', (code, reason) => {
        // Nothing more will arrive: release every waiter (and its timer) now.
        for (const w of this.#waiters) w.cancel();
        this.#waiters.clear();
        resolve({ code, reason: reason.toString() });
      }),
    );
    ws.on('message', (data) => {
      const frame = JSON.parse((data as Buffer).toString('utf8')) as ServerFrame;
      this.frames.push(frame);
      for (const w of this.#waiters) {
        if (w.match(frame)) {
          this.#waiters.delete(w);
          w.resolve(frame);
        }
      }
    });
  }

  static async connect(port: number, options: { protocol?: string | null; origin?: string; path?: string } = {}): Promise<TestClient> {
    const protocols = options.protocol === null ? [] : [options.protocol ?? PROTOCOL];
    const ws = new WebSocket(`ws://127.0.0.1:${port}${options.path ?? '/ws'}`, protocols, options.origin ? { origin: options.origin } : {});
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    return new TestClient(ws);
  }

  /** Connects and authenticates; throws when AUTH is refused. */
  static async authed(port: number, token: string): Promise<TestClient> {
    const c = await TestClient.connect(port);
    const reply = await c.request({ op: 'AUTH', token });
    if (reply.op !== 'OK') throw new Error(`AUTH refused: ${JSON.stringify(reply)}`);
    return c;
  }

  /** The next frame (already received or future) that matches. */
  waitFor(match: (f: ServerFrame) => boolean, timeoutMs = 10_000, skip = 0): Promise<ServerFrame> {
    const seen = this.frames.filter(match);
    if (seen.length > skip) return Promise.resolve(seen[skip] as ServerFrame);
    return new Promise((resolve, reject) => {
      let count = seen.length;
      const w = {
        match: (f: ServerFrame) => match(f) && count++ >= skip,
        resolve: (f: ServerFrame) => {
          clearTimeout(timer);
          resolve(f);
        },
        cancel: () => {
          clearTimeout(timer);
          reject(new Error(`connection closed while waiting for a frame; last: ${JSON.stringify(this.frames.slice(-3))}`));
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(w);
        reject(new Error(`timed out waiting for a frame; last: ${JSON.stringify(this.frames.slice(-3))}`));
      }, timeoutMs);
      this.#waiters.add(w);
    });
  }

  /** Sends a request with a fresh id and resolves with its OK or ERR. */
  request(frame: Record<string, unknown>, timeoutMs = 10_000): Promise<ServerFrame> {
    const id = `r${++this.#next}`;
    const reply = this.waitFor((f) => (f.op === 'OK' || f.op === 'ERR') && f.id === id, timeoutMs);
    this.ws.send(JSON.stringify({ ...frame, id }));
    return reply;
  }

  events(sub?: string): EventFrame[] {
    return this.frames.filter((f): f is EventFrame => f.op === 'EVENT' && (sub === undefined || f.sub === sub));
  }

  /** Resolves once `n` events (of `sub`) have arrived. */
  async nEvents(n: number, sub?: string, timeoutMs = 15_000): Promise<EventFrame[]> {
    if (this.events(sub).length < n) await this.waitFor((f) => f.op === 'EVENT' && (sub === undefined || f.sub === sub), timeoutMs, n - 1);
    return this.events(sub);
  }

  close(): void {
    this.ws.close();
  }
}
