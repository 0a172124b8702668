/**
 * A TCP proxy in front of the test database that injects faults the way a
 * network or an overloaded server would: latency on every chunk, a freeze
 * (bytes held, connections kept), and an outage (every connection cut, new
 * ones refused). Order is preserved per direction.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

/** A running fault proxy. */
export interface FaultProxy {
  readonly port: number;
  /** The database URL through the proxy (same path and options as `target`). */
  readonly url: string;
  /** One-way delay added to every chunk, in ms. */
  setLatency(ms: number): void;
  /** Holds all traffic (as a stopped process would) until `resume`. */
  pause(): void;
  resume(): void;
  /** Cuts every connection and refuses new ones until `accept`. */
  refuse(): void;
  accept(): void;
  close(): Promise<void>;
}

interface Pipe {
  queue: Array<{ due: number; chunk: Buffer }>;
  timer: NodeJS.Timeout | undefined;
  to: Socket;
}

/** Starts a proxy on a free loopback port forwarding to the host and port of `targetUrl`. */
export async function startFaultProxy(targetUrl: string): Promise<FaultProxy> {
  const target = new URL(targetUrl);
  const targetPort = Number(target.port || 27017);
  let latency = 0;
  let paused = false;
  let refusing = false;
  const sockets = new Set<Socket>();
  const pipes = new Set<Pipe>();

  const flush = (pipe: Pipe): void => {
    pipe.timer = undefined;
    if (paused) return;
    const now = Date.now();
    while (pipe.queue.length > 0 && (pipe.queue[0]?.due ?? 0) <= now) {
      const item = pipe.queue.shift();
      if (item && !pipe.to.destroyed) pipe.to.write(item.chunk);
    }
    const next = pipe.queue[0];
    if (next) pipe.timer = setTimeout(() => flush(pipe), Math.max(0, next.due - now));
  };
  const forward = (from: Socket, to: Socket): void => {
    const pipe: Pipe = { queue: [], timer: undefined, to };
    pipes.add(pipe);
    from.on('data', (chunk: Buffer) => {
      pipe.queue.push({ due: Date.now() + latency, chunk });
      if (!pipe.timer && !paused) flush(pipe);
    });
    from.once('close', () => {
      if (pipe.timer) clearTimeout(pipe.timer);
      pipes.delete(pipe);
      to.destroy();
    });
  };

  const server: Server = createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
      // A reset from either side just ends the pair.
      s.on('error', () => s.destroy());
    }
    forward(client, upstream);
    forward(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const url = new URL(targetUrl);
  url.host = `127.0.0.1:${port}`;
  // A replica set member (SecantusDB, MongoDB) names its own address in `hello`; without a
  // direct connection the driver would follow that name and go around the proxy.
  url.searchParams.set('directConnection', 'true');

  return {
    port,
    url: url.toString(),
    setLatency: (ms) => void (latency = ms),
    pause: () => void (paused = true),
    resume: () => {
      paused = false;
      for (const p of pipes) if (!p.timer) flush(p);
    },
    refuse: () => {
      refusing = true;
      for (const s of sockets) s.destroy();
    },
    accept: () => void (refusing = false),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        for (const p of pipes) if (p.timer) clearTimeout(p.timer);
        server.close(() => resolve());
      }),
  };
}
