import { performance } from 'node:perf_hooks';
import type { AppendTraffic } from '../retention/index.js';

/**
 * How long after a batch the drainer still counts as busy: about the gap between the batches
 * of a steady writer (a change stream wakes a worker per commit), so retention's small deletes
 * hold while messages keep coming, and its large ones wait for a real pause.
 */
const RECENT_MS = 250;

/**
 * The batches this drainer's workers have under way, for retention to give way to (the
 * keeper and the workers share a process, and on a small machine a database, so every
 * delete that runs beside an append delays it).
 *
 * Bounded: one waiter per keeper (a keeper makes one call at a time), released when the last
 * batch ends or at its own deadline, whichever comes first.
 */
export class DrainTraffic implements AppendTraffic {
  #busy = 0;
  #lastEnd = Number.NEGATIVE_INFINITY;
  readonly #waiters = new Set<() => void>();

  /** A batch starts (its read, append and removal). */
  begin(): void {
    this.#busy++;
  }

  /** That batch ended, whatever its outcome. */
  end(): void {
    this.#busy = Math.max(0, this.#busy - 1);
    this.#lastEnd = performance.now();
    if (this.#busy > 0) return;
    for (const release of this.#waiters) release();
    this.#waiters.clear();
  }

  async quiet(maxWaitMs: number, signal?: AbortSignal): Promise<boolean> {
    const recent = this.#busy > 0 || performance.now() - this.#lastEnd < RECENT_MS;
    // Messages keep coming: the next batch's end is when the next arrival is furthest away.
    if (recent && maxWaitMs > 0 && signal?.aborted !== true) {
      let release = (): void => undefined;
      const done = new Promise<void>((resolve) => (release = resolve));
      this.#waiters.add(release);
      const timer = setTimeout(release, maxWaitMs);
      signal?.addEventListener('abort', release, { once: true });
      await done;
      // Nothing of this wait may outlive it: the signal lives as long as the drainer.
      clearTimeout(timer);
      signal?.removeEventListener('abort', release);
      this.#waiters.delete(release);
    }
    return this.#busy > 0 || performance.now() - this.#lastEnd < RECENT_MS;
  }
}
