import type { Collection } from 'mongodb';
import { toEvent, type EventDocument, type FenceDocument } from './mongo-documents.js';
import type { LogEvent } from './types.js';

/**
 * How many of a partition's latest ids a writer remembers (and a claim reads
 * when the fence records no insert). At least the largest drainer batch: a
 * holder that dies between its append and the outbox removal leaves at most one
 * batch logged but still pending.
 */
const RECENT_WINDOW = 5_000;

/** What this process knows of a partition it writes: never ahead of the log. */
export interface WriterState {
  /** A sequence number present in the log (0 = empty); all appends go after it. */
  head: number;
  /** Recently appended ids, oldest first (a bounded set). */
  recent: Set<string>;
}

/**
 * The head and latest ids from the fence's recorded insert: the ids of it that
 * landed, in order, are found by `_id`; the head is the last of them (or the
 * slot before it). Only a partition never written by this version needs a scan.
 */
export async function stateFrom(events: Collection<EventDocument>, partition: number, fence: FenceDocument | null): Promise<WriterState> {
  const next = fence?.next;
  if (!next) return scanState(events, partition);
  const landed = await landedPrefix(events, partition, next);
  return { head: next.from - 1 + landed.length, recent: new Set(landed) };
}

/**
 * The ids of `next` that are in the log at their planned slots. Inserts land
 * as a prefix (each call carries at most {@link APPEND_CHUNK} documents and
 * what lands above an empty slot is taken back), so a binary search finds the
 * end of it in log2(n) `_id` lookups (one when the whole insert landed, the
 * usual case).
 */
async function landedPrefix(
  events: Collection<EventDocument>,
  partition: number,
  next: NonNullable<FenceDocument['next']>,
): Promise<string[]> {
  const landed = async (i: number): Promise<boolean> => {
    const d = await events.findOne({ _id: next.ids[i] }, { projection: { seq: 1, partition: 1 } });
    return d !== null && d.partition === partition && d.seq === next.from + i;
  };
  // Almost always the whole insert landed: one lookup of its last id says so.
  if (next.ids.length === 0 || (await landed(next.ids.length - 1))) return [...next.ids];
  let [lo, hi] = [0, next.ids.length - 1]; // ids[0..lo) landed; ids[hi..) did not
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (await landed(mid)) lo = mid + 1;
    else hi = mid;
  }
  return next.ids.slice(0, lo);
}

/** Documents by `_id`, as parallel equality lookups (served from the `_id` index on every server). */
async function byIds(
  events: Collection<EventDocument>,
  ids: readonly string[],
): Promise<Map<string, Pick<EventDocument, '_id' | 'seq' | 'partition' | 'w'>>> {
  const docs = await Promise.all(ids.map((_id) => events.findOne({ _id }, { projection: { _id: 1, seq: 1, partition: 1, w: 1 } })));
  return new Map(docs.filter((d) => d !== null).map((d) => [d._id, d]));
}

/**
 * Reads back a failed insert's documents: keeps the contiguous prefix that is
 * ours, deletes our documents that landed above an empty slot, and lists ids
 * that are in the log from another write.
 */
export async function settleInsert(
  events: Collection<EventDocument>,
  state: WriterState,
  docs: EventDocument[],
  appended: LogEvent[],
): Promise<{ accepted: string[]; elsewhere: string[] }> {
  const byId = await byIds(
    events,
    docs.map((d) => d._id),
  );
  const ours = (d: EventDocument): boolean => {
    const f = byId.get(d._id);
    return f !== undefined && f.w === d.w && f.seq === d.seq && f.partition === d.partition;
  };
  let prefix = 0;
  while (prefix < docs.length && ours(docs[prefix] as EventDocument)) prefix++;
  const accepted = docs.slice(0, prefix);
  const strays = docs.slice(prefix).filter(ours);
  if (strays.length > 0) {
    // Only a server that lands an ordered insert out of order gets here.
    const slot = (docs[prefix] as EventDocument).seq;
    const occupied = await events.findOne({ partition: (docs[0] as EventDocument).partition, seq: slot }, { projection: { _id: 1 } });
    if (occupied === null) {
      // Above an empty slot: no reader has passed it, so removing them again is invisible.
      await events.deleteMany({ _id: { $in: strays.map((d) => d._id) }, w: (strays[0] as EventDocument).w });
    } else {
      // Contiguous behind another writer's event: readers may have seen them, so they stay.
      accepted.push(...strays);
    }
  }
  accept(state, accepted, appended);
  const elsewhere = docs.filter((d) => byId.has(d._id) && !ours(d)).map((d) => d._id);
  return { accepted: accepted.map((d) => d._id), elsewhere };
}

/** Takes `docs` (landed in order) into the writer's state and `appended`, keeping `recent` bounded. */
export function accept(state: WriterState, docs: readonly EventDocument[], appended: LogEvent[]): void {
  for (const d of docs) {
    appended.push(toEvent(d));
    state.recent.add(d._id);
    state.head = Math.max(state.head, d.seq);
  }
  for (const id of state.recent) {
    if (state.recent.size <= RECENT_WINDOW) break;
    state.recent.delete(id);
  }
}

/** Head and latest ids by reading the partition's end: a scan where the server has no usable index. */
async function scanState(events: Collection<EventDocument>, partition: number): Promise<WriterState> {
  const latest = await events.find({ partition }, { sort: { seq: -1 }, limit: RECENT_WINDOW, projection: { _id: 1, seq: 1 } }).toArray();
  return { head: latest[0]?.seq ?? 0, recent: new Set(latest.reverse().map((d) => d._id)) };
}

/** The partition's highest sequence (0 when empty). */
export async function maxSeq(events: Collection<EventDocument>, partition: number): Promise<number> {
  const last = await events.findOne({ partition }, { sort: { seq: -1 }, projection: { seq: 1 } });
  return last?.seq ?? 0;
}
