/** Drainer processes and message producers shared by the process tests. */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Db } from 'mongodb';
import type { Outbox } from '../../internal/outbox/index.js';
import { startBinary, type BinaryProcess } from './process.js';
import { pendingCount } from './verify.js';

/** Drainer processes started by {@link drainerProcess}, to be killed after each test. */
export class DrainerFleet {
  readonly running = new Set<BinaryProcess>();

  /** Starts a drainer on `db` with short leases and fast polling (override with `env`). */
  start(url: string, db: string, name: string, env: Record<string, string> = {}): BinaryProcess {
    const p = startBinary('drainer', {
      MONGO_URL: url,
      MONGO_DB: db,
      MEMBER_ID: name,
      OUTBOX_PARTITIONS: '8',
      LEASE_TTL: '2s',
      LEASE_RENEW_INTERVAL: '300ms',
      POLL_MAX: '100ms',
      DRAINER_BATCH_SIZE: '100',
      METRICS_HOST: '127.0.0.1',
      METRICS_PORT: '0',
      ...env,
    });
    this.running.add(p);
    void p.exited.then(() => this.running.delete(p));
    return p;
  }

  /** SIGKILLs (after SIGCONT) every drainer still running. */
  async killAll(): Promise<void> {
    for (const p of this.running) {
      p.child.kill('SIGCONT');
      p.kill('SIGKILL');
    }
    await Promise.all([...this.running].map((p) => p.exited));
  }
}

/** Writes `total` messages over `keys` keys, each key's payload counter `n` counting up from 1 (or from `counters`). */
export async function produce(
  outbox: Outbox,
  total: number,
  keys: number,
  batch: number,
  onProgress?: (written: number) => Promise<void>,
  counters = new Map<string, number>(),
): Promise<string[]> {
  const ids: string[] = [];
  for (let written = 0; written < total; written += batch) {
    const messages = Array.from({ length: Math.min(batch, total - written) }, (_, i) => {
      const key = `key-${(written + i) % keys}`;
      const n = (counters.get(key) ?? 0) + 1;
      counters.set(key, n);
      return { topic: 'orders.updated', key, payload: { key, n } };
    });
    ids.push(...(await outbox.addMany(messages)).map((r) => r.id));
    await onProgress?.(written + messages.length);
  }
  return ids;
}

/** How many leases a drainer has acquired so far (from its logs). */
export const acquiredCount = (p: BinaryProcess): number => p.logs.filter((l) => l.msg === 'lease acquired').length;

/**
 * Waits until no message is pending in `db`'s outbox (P = `partitions`). Polls
 * twice a second: counting is a scan on FerretDB, and the test must not be what
 * loads the server.
 */
export async function waitDrained(db: Db, partitions: number, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = await pendingCount(db, partitions);
    if (left === 0) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for the outbox to drain (${left} pending)`);
    await sleep(500);
  }
}
