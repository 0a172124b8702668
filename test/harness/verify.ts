/** Checks the event log against what was written to the outbox. */
import type { Db } from 'mongodb';

interface EventRow {
  _id: string;
  key: string | null;
  partition: number;
  seq: number;
  epoch: number;
  payload: { key?: string; n?: number };
}

/** Summary returned by {@link verifyExactlyOnceInOrder}. */
export interface LogCheck {
  events: number;
  partitions: number;
}

/**
 * Asserts: every outbox message is archived as sent and in the log exactly once; each
 * partition's committed sequence is 1..n without gaps; per key, payload counter
 * `n` increases with seq (per-key order).
 */
export async function verifyExactlyOnceInOrder(db: Db, expectedIds: readonly string[]): Promise<LogCheck> {
  const rows = await db
    .collection<EventRow>('events')
    .find({}, { sort: { partition: 1, seq: 1 } })
    .toArray();
  const ids = rows.map((r) => r._id);
  expect(new Set(ids).size).toBe(ids.length);
  expect([...ids].sort()).toEqual([...expectedIds].sort());

  const byPartition = new Map<number, number[]>();
  for (const r of rows) byPartition.set(r.partition, [...(byPartition.get(r.partition) ?? []), r.seq]);
  for (const [p, seqs] of byPartition) {
    expect({ partition: p, seqs }).toEqual({ partition: p, seqs: seqs.map((_, i) => i + 1) });
  }

  const lastByKey = new Map<string, number>();
  for (const r of rows) {
    const key = r.key ?? '';
    const n = r.payload.n ?? 0;
    const prev = lastByKey.get(key) ?? 0;
    if (n <= prev) throw new Error(`key ${key}: counter ${n} published after ${prev} (partition ${r.partition}, seq ${r.seq})`);
    lastByKey.set(key, n);
  }
  expect(await db.collection('outbox').countDocuments()).toBe(0);
  expect(await db.collection('outbox_sent').countDocuments()).toBe(expectedIds.length);
  return { events: rows.length, partitions: byPartition.size };
}
