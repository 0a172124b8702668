import type { ServerFrame } from '../protocol/index.js';
import type { ClientOptions } from './client.js';
import { HubClientError } from './errors.js';
import type { Sub } from './subscriptions.js';

/** The minimal WebSocket surface the client uses (browser WebSocket and `ws` both fit). */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}
export type SocketCtor = new (url: string, protocols: string[]) => SocketLike;

/** `readyState` of an open socket (the same in browsers and `ws`). */
export const OPEN = 1;

/** A request in flight, until its reply (or its timeout, abort or the client's end) settles it. */
export interface Pending {
  frame: Record<string, unknown>;
  /** Sent again after a reconnect (idempotent requests only). */
  replay: boolean;
  sent: boolean;
  /** Settles the request once: clears its timer and abort listener, then resolves or rejects. */
  settle(outcome: ServerFrame | HubClientError): void;
  /** Settles (never rejects) when the request does. */
  done: Promise<void>;
}

/** The WebSocket implementation: the one in the options, else the platform's, else the `ws` package. */
export async function socketCtor(o: ClientOptions): Promise<SocketCtor> {
  if (o.WebSocket) return o.WebSocket as SocketCtor;
  if (typeof WebSocket !== 'undefined') return WebSocket as unknown as SocketCtor;
  // Node 20 has no global WebSocket. The browser build aliases `ws` away (see the Makefile).
  const ws = await import('ws');
  return ws.WebSocket as unknown as SocketCtor;
}

/**
 * Registers request `id` in `pending` and returns its reply. It settles once:
 * by its reply, after `timeoutMs`, when `signal` aborts or when the client
 * fails it. `send` is handed the request once it is registered.
 */
export function addRequest(
  pending: Map<string, Pending>,
  id: string,
  frame: Record<string, unknown>,
  replay: boolean,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  send: (p: Pending) => void,
): Promise<ServerFrame> {
  return new Promise<ServerFrame>((resolve, reject) => {
    const onAbort = (): void => p.settle(new HubClientError('ABORTED', 'aborted', { cause: signal?.reason }));
    const timer = setTimeout(
      () => p.settle(new HubClientError('TIMEOUT', `no reply to ${String(frame['op'])} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    let markDone: () => void = () => undefined;
    const p: Pending = {
      frame: { ...frame, id },
      replay,
      sent: false,
      done: new Promise((r) => (markDone = r)),
      settle: (outcome) => {
        if (pending.get(id) !== p) return;
        pending.delete(id);
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (outcome instanceof HubClientError) reject(outcome);
        else resolve(outcome);
        markDone();
      },
    };
    pending.set(id, p);
    signal?.addEventListener('abort', onAbort, { once: true });
    send(p);
  });
}

/** Registers the `AUTH` request `id` (the caller sends it) in `pending` and returns its reply, bounded by `timeoutMs`. */
export function addAuthRequest(pending: Map<string, Pending>, id: string, timeoutMs: number): Promise<ServerFrame> {
  return new Promise<ServerFrame>((resolve, reject) => {
    const timer = setTimeout(() => p.settle(new HubClientError('TIMEOUT', 'no reply to AUTH')), timeoutMs);
    const p: Pending = {
      frame: {},
      replay: false,
      sent: true,
      done: Promise.resolve(),
      settle: (outcome) => {
        if (pending.get(id) !== p) return;
        pending.delete(id);
        clearTimeout(timer);
        if (outcome instanceof HubClientError) reject(outcome);
        else resolve(outcome);
      },
    };
    pending.set(id, p);
  });
}

/**
 * Handles one frame from the gateway: an event goes to its subscription, a
 * reply settles its request, an error without a request goes to `onError`.
 */
export function dispatchFrame(text: string, subs: Map<string, Sub>, pending: ReadonlyMap<string, Pending>, o: ClientOptions): void {
  let f: ServerFrame;
  try {
    f = JSON.parse(text) as ServerFrame;
  } catch {
    return; // the gateway only sends JSON; anything else is not ours to interpret
  }
  if (f.op === 'EVENT') {
    subs.get(f.sub)?.onEvent(f.event, f.delivery);
    return;
  }
  if (f.id === null) {
    if (f.op === 'ERR' && f.code === 'SUBSCRIPTION_REVOKED' && f.sub) subs.delete(f.sub);
    if (f.op === 'ERR' && f.code === 'TRIMMED' && f.sub && f.partition !== undefined && f.firstSeq !== undefined)
      subs.get(f.sub)?.options.onTrimmed?.({ partition: f.partition, firstSeq: f.firstSeq });
    if (f.op === 'ERR') o.onError?.(new HubClientError(f.code, f.message));
    return;
  }
  const p = pending.get(f.id);
  if (!p) return;
  if (f.op === 'OK') p.settle(f);
  else if (f.op === 'ERR') p.settle(new HubClientError(f.code, f.message));
}
