import type { EventLogRetention, EventSize } from '../eventlog/index.js';

/** Events one sample reads per partition going forward: catching up over a long log takes several samples. */
export const WALK_BUDGET = 5_000;
/** Events per read (within the sample's bound on a range of the log: LAG_WINDOW). */
const PAGE = 1_000;
/** Sequences one block sums up at first; doubles for a partition whose blocks pass {@link MAX_BLOCKS}. */
const BLOCK = 1_000;
/** Most blocks kept per partition: memory stays bounded however much a partition retains. */
const MAX_BLOCKS = 256;
/**
 * Most distinct topics counted one by one (memory and the API's size stay bounded whatever
 * topics writers invent); the events of any further topic are summed under {@link OTHER_TOPICS}.
 */
export const MAX_TOPICS = 1_000;
/** Where the events of topics past {@link MAX_TOPICS} are counted (no topic can be named so). */
export const OTHER_TOPICS = '(other topics)';

/** Events and bytes. */
interface Tally {
  events: number;
  bytes: number;
}

/** What the events of sequences `from..to` (both counted) of one partition hold, per topic. */
interface Block {
  /** Aligned start of the block (`(start - 1) % span === 0`). */
  readonly start: number;
  from: number;
  to: number;
  topics: Map<string, Tally>;
  /** Pro-rated after a trim inside it, not counted: an estimate until it is trimmed away. */
  estimated: boolean;
}

interface PartitionWalk {
  first: number;
  /** Every sequence up to here was read (and counted, holes aside). */
  countedTo: number;
  span: number;
  blocks: Block[];
}

/** What the walk knows of one partition. */
export interface PartitionFigures {
  /** Bytes of the retained events counted so far. */
  bytes: number;
  /** Sequences up to here are counted (below the partition's last: still catching up). */
  countedTo: number;
  /** False while catching up, or while a block cut by a trim is pro-rated. */
  exact: boolean;
}

/** What the log retains of one topic, over every partition. */
export interface TopicRetentionRow {
  topic: string;
  events: number;
  bytes: number;
  /** Events of the topic this ops process saw trimmed since it started. */
  trimmedSinceStart: number;
}

/**
 * Per partition and topic, the retained events and their stored bytes, counted by reading
 * the log forward as it grows (at most {@link WALK_BUDGET} events per partition per sample)
 * and remembered in blocks of sequences, so that what a trim removes is subtracted without
 * the events: blocks wholly below the first retained sequence are dropped, a block cut by a
 * trim is read again (its remainder, at most one block) or, once blocks have grown past one
 * page, pro-rated and marked estimated. Memory: at most MAX_BLOCKS blocks per partition of
 * at most MAX_TOPICS topics each. Exact once caught up, except for a pro-rated block.
 */
export class RetentionWalk {
  readonly #log: Pick<EventLogRetention, 'sizes'>;
  readonly #walks = new Map<number, PartitionWalk>();
  readonly #topics = new Set<string>();
  readonly #trimmed = new Map<string, number>();

  constructor(log: Pick<EventLogRetention, 'sizes'>) {
    this.#log = log;
  }

  /** Brings `partition` up to date with its first retained sequence and its last one. */
  async update(partition: number, first: number, last: number): Promise<PartitionFigures> {
    let w = this.#walks.get(partition);
    if (!w) this.#walks.set(partition, (w = { first, countedTo: first - 1, span: BLOCK, blocks: [] }));
    if (first > w.first) await this.#trim(w, partition, first);
    for (let read = 0; w.countedTo < last && read < WALK_BUDGET;) {
      const limit = Math.min(PAGE, last - w.countedTo, WALK_BUDGET - read);
      this.#add(w, await this.#log.sizes(partition, w.countedTo, limit), w.countedTo + limit);
      read += limit;
    }
    return {
      bytes: w.blocks.reduce((n, b) => n + sum(b.topics).bytes, 0),
      countedTo: w.countedTo,
      exact: w.countedTo >= last && !w.blocks.some((b) => b.estimated),
    };
  }

  /** Per topic over every partition, most bytes first. */
  topics(): TopicRetentionRow[] {
    const all = new Map<string, Tally>();
    for (const w of this.#walks.values()) {
      for (const b of w.blocks) {
        for (const [topic, t] of b.topics) {
          const a = all.get(topic);
          if (a) {
            a.events += t.events;
            a.bytes += t.bytes;
          } else all.set(topic, { ...t });
        }
      }
    }
    for (const topic of this.#trimmed.keys()) if (!all.has(topic)) all.set(topic, { events: 0, bytes: 0 });
    return [...all]
      .map(([topic, t]) => ({ topic, events: t.events, bytes: t.bytes, trimmedSinceStart: this.#trimmed.get(topic) ?? 0 }))
      .sort((a, b) => b.bytes - a.bytes || b.events - a.events || (a.topic < b.topic ? -1 : 1));
  }

  #add(w: PartitionWalk, sizes: readonly EventSize[], upTo: number): void {
    for (const e of sizes) {
      if (e.gap || e.seq <= w.countedTo) continue;
      const start = Math.floor((e.seq - 1) / w.span) * w.span + 1;
      let b = w.blocks.at(-1);
      if (!b || b.start !== start) w.blocks.push((b = { start, from: e.seq, to: e.seq, topics: new Map(), estimated: false }));
      b.to = e.seq;
      const topic = this.#name(e.topic);
      const t = b.topics.get(topic);
      if (t) {
        t.events++;
        t.bytes += e.bytes;
      } else b.topics.set(topic, { events: 1, bytes: e.bytes });
    }
    // Holes included: what is not there by now is not counted (a filler written later is a few bytes).
    w.countedTo = upTo;
    if (w.blocks.length > MAX_BLOCKS) this.#coarsen(w);
  }

  /** Drops what lies below `first` and counts it as trimmed. */
  async #trim(w: PartitionWalk, partition: number, first: number): Promise<void> {
    w.first = first;
    while (w.blocks.length > 0 && (w.blocks[0] as Block).to < first) this.#gone((w.blocks.shift() as Block).topics);
    if (w.countedTo < first - 1) w.countedTo = first - 1;
    const b = w.blocks[0];
    if (!b || b.from >= first) return;
    const remaining = b.to - first + 1;
    let kept: Map<string, Tally>;
    if (remaining <= PAGE) {
      kept = new Map();
      for (const e of await this.#log.sizes(partition, first - 1, remaining)) {
        if (e.gap) continue;
        const topic = this.#name(e.topic);
        const t = kept.get(topic) ?? { events: 0, bytes: 0 };
        kept.set(topic, { events: t.events + 1, bytes: t.bytes + e.bytes });
      }
      b.estimated = false;
    } else {
      const share = remaining / (b.to - b.from + 1);
      kept = new Map(
        [...b.topics].map(([topic, t]) => [topic, { events: Math.round(t.events * share), bytes: Math.round(t.bytes * share) }]),
      );
      b.estimated = true;
    }
    const gone = new Map<string, Tally>();
    for (const [topic, t] of b.topics) {
      const k = kept.get(topic) ?? { events: 0, bytes: 0 };
      gone.set(topic, { events: Math.max(0, t.events - k.events), bytes: 0 });
    }
    this.#gone(gone);
    b.topics = kept;
    b.from = first;
  }

  #gone(topics: ReadonlyMap<string, Tally>): void {
    for (const [topic, t] of topics) if (t.events > 0) this.#trimmed.set(topic, (this.#trimmed.get(topic) ?? 0) + t.events);
  }

  /** Doubles the partition's block span, merging neighbours: half the blocks, same sums. */
  #coarsen(w: PartitionWalk): void {
    w.span *= 2;
    const merged: Block[] = [];
    for (const b of w.blocks) {
      const start = Math.floor((b.start - 1) / w.span) * w.span + 1;
      const last = merged.at(-1);
      if (last && last.start === start) {
        last.to = b.to;
        last.estimated ||= b.estimated;
        for (const [topic, t] of b.topics) {
          const a = last.topics.get(topic);
          if (a) {
            a.events += t.events;
            a.bytes += t.bytes;
          } else last.topics.set(topic, { ...t });
        }
      } else merged.push({ ...b, start, topics: new Map([...b.topics].map(([k, t]) => [k, { ...t }])) });
    }
    w.blocks = merged;
  }

  #name(topic: string): string {
    if (this.#topics.has(topic)) return topic;
    if (this.#topics.size >= MAX_TOPICS) return OTHER_TOPICS;
    this.#topics.add(topic);
    return topic;
  }
}

function sum(topics: ReadonlyMap<string, Tally>): Tally {
  let events = 0;
  let bytes = 0;
  for (const t of topics.values()) {
    events += t.events;
    bytes += t.bytes;
  }
  return { events, bytes };
}
