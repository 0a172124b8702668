import { setTimeout as sleep } from 'node:timers/promises';
import type { ChangeStream, Document } from 'mongodb';

/** Pause between two empty reads of a change stream (a server that ignores `maxAwaitTimeMS` answers at once). */
const CHANGE_STREAM_IDLE_MS = 25;

/**
 * Follows a change stream for as long as it is wanted: when the stream fails
 * (the server restarted, a primary stepped down, a cursor timed out), it is
 * reopened after a backoff of up to 5 s instead of being given up. Reads are
 * paced: after an empty read it waits {@link CHANGE_STREAM_IDLE_MS}, so a server
 * that answers an awaiting read at once (mongo-java-server) is not asked
 * thousands of times a second. Returns the stop function. `onError` is told
 * every failure (callers log it; the logger collapses repeats).
 */
export function followChangeStream<T extends Document>(
  open: () => ChangeStream<Document, T>,
  onChange: (change: T) => void,
  onError: (err: unknown) => void,
): () => Promise<void> {
  const stop = new AbortController();
  let current: ChangeStream<Document, T> | undefined;
  const loop = (async () => {
    let failures = 0;
    while (!stop.signal.aborted) {
      const stream = open();
      current = stream;
      try {
        while (!stop.signal.aborted) {
          const change = await stream.tryNext();
          if (change) {
            failures = 0;
            onChange(change);
          } else await sleep(CHANGE_STREAM_IDLE_MS, undefined, { signal: stop.signal });
        }
      } catch (err) {
        if (stop.signal.aborted) break;
        onError(err);
      }
      // Closing a stream that failed or is being stopped: nothing left to report.
      await stream.close().catch(() => undefined);
      // Rejects only when stopping, which ends the loop.
      await sleep(Math.min(5_000, 100 * 2 ** Math.min(failures++, 6)), undefined, { signal: stop.signal }).catch(() => undefined);
    }
  })();
  return async () => {
    stop.abort();
    await current?.close().catch(() => undefined); // ends a read in flight; the loop sees the stop
    await loop;
  };
}
