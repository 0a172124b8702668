/**
 * A TCP proxy in front of the test database that decodes what clients send
 * (MongoDB wire protocol OP_MSG) and records each command: which command, on
 * which collection, with which filter. Tests use it to prove from outside how
 * much database work a request or a loop does, and keyed by what.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { BSON, type Document } from 'mongodb';

/** One command a client sent. */
export interface WireCommand {
  at: number;
  /** The command's name (`find`, `aggregate`, `insert`...). */
  name: string;
  /** The collection it names (empty for database commands). */
  collection: string;
  body: Document;
}

/** A running recorder. */
export interface WireRecorder {
  /** The database URL through the recorder (same path and options as the target). */
  readonly url: string;
  /** Every command seen so far, oldest first (handshakes and heartbeats left out). */
  readonly commands: WireCommand[];
  /** Commands recorded while `fn` ran. */
  during(fn: () => Promise<unknown>): Promise<WireCommand[]>;
  close(): Promise<void>;
}

const OP_MSG = 2013;
/** Connection and monitoring chatter, not work a caller asked for. */
const IGNORED = new Set(['hello', 'ismaster', 'isMaster', 'ping', 'saslStart', 'saslContinue', 'endSessions', 'buildInfo', 'killCursors']);

/** Decodes the body section of every complete OP_MSG in `buffer`; returns the unread rest. */
function decode(buffer: Buffer, out: WireCommand[]): Buffer {
  let rest = buffer;
  while (rest.length >= 16) {
    const length = rest.readInt32LE(0);
    if (rest.length < length) break;
    if (rest.readInt32LE(12) === OP_MSG) {
      let offset = 20; // header (16) + flag bits (4)
      while (offset < length) {
        const kind = rest.readUInt8(offset);
        const size = rest.readInt32LE(offset + 1);
        if (kind === 0) {
          const body = BSON.deserialize(rest.subarray(offset + 1, offset + 1 + size));
          const name = Object.keys(body)[0] ?? '';
          if (!IGNORED.has(name)) out.push({ at: Date.now(), name, collection: typeof body[name] === 'string' ? body[name] : '', body });
          break;
        }
        offset += 1 + size;
      }
    }
    rest = rest.subarray(length);
  }
  return rest;
}

/** Starts a recorder on a free loopback port forwarding to the host and port of `targetUrl`. */
export async function startWireRecorder(targetUrl: string): Promise<WireRecorder> {
  const target = new URL(targetUrl);
  const commands: WireCommand[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port || 27017), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
      // A reset from either side just ends the pair.
      s.on('error', () => s.destroy());
    }
    let pending: Buffer = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      pending = decode(Buffer.concat([pending, chunk]), commands);
      upstream.write(chunk);
    });
    upstream.pipe(client);
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const url = new URL(targetUrl);
  url.host = `127.0.0.1:${port}`;
  return {
    url: url.toString(),
    commands,
    async during(fn) {
      const from = commands.length;
      await fn();
      return commands.slice(from);
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
