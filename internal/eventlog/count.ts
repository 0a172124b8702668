import { assertPartition, assertRange } from './errors.js';
import type { MatchCount, MatchQuery, SeqRange } from './types.js';

/** The part of an event {@link MatchTally} looks at. */
export interface Countable {
  partition: number;
  seq: number;
  topic: string;
  publishedAt: Date;
  gap?: true;
}

/**
 * Answers several {@link MatchQuery}s from one pass over the events of the
 * union of their ranges: every adapter reads that union once and feeds each
 * event here. A topic is matched against every filter once, then remembered.
 */
export class MatchTally {
  readonly #queries: readonly MatchQuery[];
  readonly #results: Array<Map<number, MatchCount & { firstSeq: number }>>;
  readonly #byTopic = new Map<string, boolean[]>();

  constructor(queries: readonly MatchQuery[]) {
    for (const q of queries) {
      for (const [partition, range] of q.ranges) {
        assertPartition(partition);
        assertRange(range);
      }
    }
    this.#queries = queries;
    this.#results = queries.map(() => new Map<number, MatchCount & { firstSeq: number }>());
  }

  /**
   * Per partition, the merged ranges to read (each sequence once, however many
   * queries ask for it). Ranges less than `slack` apart are read as one: a few
   * sequences more, for a simpler query (a server that evaluates every clause
   * of an `$or` on every document it scans pays per clause).
   */
  union(slack = 0): Map<number, SeqRange[]> {
    const per = new Map<number, SeqRange[]>();
    for (const q of this.#queries) {
      for (const [p, r] of q.ranges) {
        if (r.toSeq <= r.afterSeq) continue;
        const list = per.get(p);
        if (list) list.push(r);
        else per.set(p, [r]);
      }
    }
    for (const [p, ranges] of per) {
      const merged: SeqRange[] = [];
      for (const r of ranges.sort((a, b) => a.afterSeq - b.afterSeq)) {
        const last = merged.at(-1);
        if (last && r.afterSeq <= last.toSeq + slack) last.toSeq = Math.max(last.toSeq, r.toSeq);
        else merged.push({ ...r });
      }
      per.set(p, merged);
    }
    return per;
  }

  add(e: Countable): void {
    if (e.gap) return;
    let matches = this.#byTopic.get(e.topic);
    if (!matches) this.#byTopic.set(e.topic, (matches = this.#queries.map((q) => q.filter.matches(e.topic))));
    this.#queries.forEach((q, i) => {
      const r = q.ranges.get(e.partition);
      if (!matches[i] || !r || e.seq <= r.afterSeq || e.seq > r.toSeq) return;
      const counts = this.#results[i] as Map<number, MatchCount & { firstSeq: number }>;
      const m = counts.get(e.partition);
      if (!m) counts.set(e.partition, { count: 1, firstPublishedAt: e.publishedAt, firstSeq: e.seq });
      else {
        m.count++;
        if (e.seq < m.firstSeq) Object.assign(m, { firstSeq: e.seq, firstPublishedAt: e.publishedAt });
      }
    });
  }

  results(): Array<Map<number, MatchCount>> {
    return this.#results.map(
      (counts) => new Map([...counts].map(([p, m]) => [p, { count: m.count, firstPublishedAt: m.firstPublishedAt }])),
    );
  }
}
