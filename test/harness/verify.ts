/** Checks the event log directly against what was written to the outbox. */
import type { Db } from 'mongodb';

interface EventRow {
  _id: string;
  key: string | null;
  partition: number;
  seq: number;
  epoch: number;
  payload: { key?: string; n?: number } | null;
  gap?: true;
}

/** Summary returned by {@link verifyExactlyOnceInOrder}. */
export interface LogCheck {
  events: number;
  partitions: number;
}

/** Messages still pending in the outbox (every partition collection of `outbox`, P partitions). */
export async function pendingCount(db: Db, partitions: number, name = 'outbox'): Promise<number> {
  const counts = await Promise.all(Array.from({ length: partitions }, (_, p) => db.collection(`${name}_p${p}`).countDocuments()));
  return counts.reduce((a, b) => a + b, 0);
}

/**
 * Problems of the log as a list (empty when it is right): holes or duplicates
 * in a partition's sequence, an id twice, an epoch going backwards within a
 * partition, a key's payload counter `n` not increasing with seq.
 */
export async function logProblems(db: Db): Promise<{ problems: string[]; rows: EventRow[] }> {
  const rows = await db
    .collection<EventRow>('events')
    .find({}, { sort: { partition: 1, seq: 1 } })
    .toArray();
  const problems: string[] = [];
  const ids = new Set<string>();
  for (const r of rows) {
    if (ids.has(r._id)) problems.push(`id ${r._id} twice`);
    ids.add(r._id);
  }
  const byPartition = new Map<number, EventRow[]>();
  for (const r of rows) byPartition.set(r.partition, [...(byPartition.get(r.partition) ?? []), r]);
  for (const [p, events] of byPartition) {
    let epoch = 0;
    events.forEach((e, i) => {
      if (e.seq !== i + 1) problems.push(`partition ${p}: seq ${e.seq} at position ${i + 1} (hole or duplicate)`);
      if (!e.gap && e.epoch < epoch) problems.push(`partition ${p}: epoch ${e.epoch} at seq ${e.seq} after epoch ${epoch}`);
      if (!e.gap) epoch = Math.max(epoch, e.epoch);
    });
  }
  const lastByKey = new Map<string, { n: number; partition: number; seq: number }>();
  for (const r of rows) {
    if (r.gap || !r.payload || typeof r.payload.n !== 'number') continue;
    const key = r.key ?? '';
    const prev = lastByKey.get(key);
    if (prev && r.payload.n <= prev.n) {
      problems.push(
        `key ${key}: counter ${r.payload.n} (p${r.partition} seq ${r.seq}) after ${prev.n} (p${prev.partition} seq ${prev.seq})`,
      );
    }
    lastByKey.set(key, { n: r.payload.n, partition: r.partition, seq: r.seq });
  }
  return { problems, rows };
}

/**
 * Asserts: every written message is in the log exactly once and none is left
 * pending; each partition's sequence is 1..n without gaps; epochs never go
 * back within a partition; per key, payload counter `n` increases with seq.
 */
export async function verifyExactlyOnceInOrder(db: Db, expectedIds: readonly string[], partitions = 8): Promise<LogCheck> {
  const { problems, rows } = await logProblems(db);
  expect(problems.slice(0, 20)).toEqual([]);
  const ids = rows.filter((r) => !r.gap).map((r) => r._id);
  expect([...ids].sort()).toEqual([...expectedIds].sort());
  expect(await pendingCount(db, partitions)).toBe(0);
  return { events: rows.length, partitions: new Set(rows.map((r) => r.partition)).size };
}
