import type { Collection } from 'mongodb';
import { isDuplicateKeyError } from '../mongo/index.js';
import { EventLogError, assertPartition } from './errors.js';
import { APPEND_CHUNK, type EventDocument, type StallDocument } from './mongo-documents.js';
import type { SequenceGap, StallReport } from './types.js';

/** Bound on the filler events one repair writes. */
const MAX_REPAIR = 100_000;

/** The missing sequence numbers right after `afterSeq`, if any. */
export async function findGap(events: Collection<EventDocument>, partition: number, afterSeq: number): Promise<SequenceGap | null> {
  assertPartition(partition);
  if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) throw new EventLogError('INVALID_RANGE', 'afterSeq must be a non-negative integer');
  const next = await events.findOne({ partition, seq: { $gt: afterSeq } }, { sort: { seq: 1 }, projection: { seq: 1, publishedAt: 1 } });
  if (!next || next.seq === afterSeq + 1) return null;
  return { partition, from: afterSeq + 1, to: next.seq - 1, nextPublishedAt: next.publishedAt };
}

/**
 * Fills `gap` with filler events (marked `gap`), unless the event after it is
 * younger than `minAgeMs` (`GAP_TOO_RECENT`) or it is too large to fill.
 */
export async function fillGap(events: Collection<EventDocument>, gap: SequenceGap, options: { minAgeMs: number }): Promise<void> {
  const partition = gap.partition;
  const age = Date.now() - gap.nextPublishedAt.getTime();
  if (age < options.minAgeMs) {
    throw new EventLogError(
      'GAP_TOO_RECENT',
      `partition ${partition}: the event after the gap is ${Math.round(age / 1000)} s old; a write may still be landing (wait ${Math.ceil(options.minAgeMs / 1000)} s)`,
    );
  }
  if (gap.to - gap.from + 1 > MAX_REPAIR)
    throw new EventLogError('INVALID_RANGE', `gap of ${gap.to - gap.from + 1} events is too large to fill`);
  const now = new Date();
  for (let from = gap.from; from <= gap.to; from += APPEND_CHUNK) {
    const fillers: EventDocument[] = [];
    for (let seq = from; seq <= Math.min(gap.to, from + APPEND_CHUNK - 1); seq++) {
      fillers.push({
        _id: `gap:${partition}:${seq}`,
        topic: '',
        key: null,
        partition,
        seq,
        epoch: 0,
        w: 'repair',
        payload: null,
        headers: {},
        createdAt: now,
        publishedAt: now,
        gap: true,
      });
    }
    try {
      await events.insertMany(fillers, { ordered: false });
    } catch (err) {
      // A slot taken meanwhile (a late write or a second repair) is exactly what we wanted.
      if (!isDuplicateKeyError(err)) throw err;
    }
  }
}

/** Records (or refreshes) `reporter`'s stall on `partition`; `null` clears it. */
export async function reportStall(
  stalls: Collection<StallDocument>,
  partition: number,
  reporter: string,
  stall: { seq: number; since: Date } | null,
): Promise<void> {
  const _id = `${partition}/${reporter}`;
  if (stall === null) {
    await stalls.deleteOne({ _id });
    return;
  }
  await stalls.updateOne(
    { _id },
    { $set: { partition, seq: stall.seq, since: stall.since, reporter, updatedAt: new Date() } },
    { upsert: true },
  );
}

/** Current stall reports, oldest first. */
export async function readStalls(stalls: Collection<StallDocument>): Promise<StallReport[]> {
  const docs = await stalls.find({}, { sort: { since: 1 }, limit: 1000 }).toArray();
  return docs.map((d) => ({ partition: d.partition, seq: d.seq, since: d.since, reporter: d.reporter, updatedAt: d.updatedAt }));
}
