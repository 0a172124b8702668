import { MAX_TOPIC_LENGTH, MAX_TOPIC_SEGMENTS, TopicError } from './errors.js';

/** One segment of a compiled pattern: a literal, `*` (exactly one) or `**` (zero or more). */
type Seg = string;
const ONE = '*';
const ANY = '**';
const LITERAL = /^[A-Za-z0-9_-]+$/;

/**
 * A subscription or grant pattern, compiled once. `*` matches exactly one
 * segment, `**` zero or more; everything else matches itself.
 */
export class TopicPattern {
  readonly source: string;
  readonly #segs: readonly Seg[];
  readonly #exact: boolean;

  private constructor(source: string, segs: Seg[]) {
    this.source = source;
    this.#segs = segs;
    this.#exact = !segs.some((s) => s === ONE || s === ANY);
  }

  /** Compiles `source`; throws a {@link TopicError} (`INVALID_PATTERN`) when malformed. */
  static compile(source: unknown): TopicPattern {
    const problem = patternProblem(source);
    if (problem !== undefined) throw new TopicError('INVALID_PATTERN', problem);
    const segs = (source as string).split('.');
    // `**.**` means the same as `**`; collapsing keeps matching linear.
    const collapsed = segs.filter((s, i) => !(s === ANY && segs[i - 1] === ANY));
    return new TopicPattern(source as string, collapsed);
  }

  /** True when the pattern has no wildcard (it names one topic). */
  get exact(): boolean {
    return this.#exact;
  }

  /** The compiled segments (read-only). */
  get segments(): readonly string[] {
    return this.#segs;
  }

  /** Does the topic match? */
  matches(topic: string): boolean {
    return this.#exact ? topic === this.source : matchSegs(this.#segs, topic.split('.'));
  }

  /**
   * A regular expression (source, anchored) matching exactly the topics this
   * pattern matches, for servers that filter by `$regex`. A literal prefix comes
   * first, so an index on the topic can bound the scan.
   */
  regexSource(): string {
    let out = '^';
    let afterSegment = false;
    let leadingAny = false;
    for (const s of this.#segs) {
      if (s === ANY) {
        // Zero or more further segments after the previous one, or before the next one when it leads.
        if (afterSegment) out += '(?:\\.[^.]+)*';
        else leadingAny = true;
        continue;
      }
      if (afterSegment) out += '\\.';
      else if (leadingAny) out += '(?:[^.]+\\.)*';
      // Literals are letters, digits, '_' and '-': nothing a regular expression treats specially.
      out += s === ONE ? '[^.]+' : s;
      afterSegment = true;
    }
    // Only `**`: any topic (topics have at least one segment).
    if (!afterSegment) out += '[^.]+(?:\\.[^.]+)*';
    return `${out}$`;
  }

  /**
   * True when every topic this pattern matches, `other` matches too (`other` ⊇
   * `this`). Polynomial in this pattern (only `other` is determinised); a check
   * past {@link MAX_INCLUSION_STATES} answers false.
   */
  within(other: TopicPattern): boolean {
    if (this.#segs.join('.') === other.#segs.join('.')) return true;
    return escapes(this.#segs, other.#segs) === false;
  }

  /** True when some topic matches both patterns. At most (|a|+1)(|b|+1) states: polynomial in both. */
  overlaps(other: TopicPattern): boolean {
    return meet(this.#segs, other.#segs);
  }
}

/** Why `source` is not a valid pattern, or undefined. */
export function patternProblem(source: unknown): string | undefined {
  if (typeof source !== 'string') return 'pattern must be a string';
  if (source.length === 0) return 'pattern must not be empty';
  if (source.length > MAX_TOPIC_LENGTH) return `pattern longer than ${MAX_TOPIC_LENGTH} characters`;
  const segs = source.split('.');
  if (segs.length > MAX_TOPIC_SEGMENTS) return `pattern has more than ${MAX_TOPIC_SEGMENTS} segments`;
  for (const s of segs) {
    if (s === ONE || s === ANY) continue;
    if (s.length === 0) return `pattern ${JSON.stringify(source)} has an empty segment`;
    if (!LITERAL.test(s)) return `pattern segment ${JSON.stringify(s)} must be '*', '**' or letters, digits, '_' and '-'`;
  }
  return undefined;
}

function memo<T>(fn: (i: number, j: number, self: (i: number, j: number) => T) => T): (i: number, j: number) => T {
  const cache = new Map<number, T>();
  const self = (i: number, j: number): T => {
    const k = i * 64 + j;
    let v = cache.get(k);
    if (v === undefined) {
      v = fn(i, j, self);
      cache.set(k, v);
    }
    return v;
  };
  return self;
}

function matchSegs(p: readonly Seg[], t: readonly string[]): boolean {
  return memo<boolean>((i, j, self) => {
    if (i === p.length) return j === t.length;
    const s = p[i];
    if (s === ANY) return self(i + 1, j) || (j < t.length && self(i, j + 1));
    if (j === t.length) return false;
    return (s === ONE || s === t[j]) && self(i + 1, j + 1);
  })(0, 0);
}

/** A segment that equals no literal: stands for "any other segment". */
const OTHER = '\u0000';

/**
 * Most (state, state-set) pairs one inclusion check explores. Only the covering
 * pattern is determinised, and grants come from the token issuer, so real checks
 * visit a handful; a grant built to blow up its subset construction is cut off
 * here and the check answers "not covered" (a refusal, never a grant).
 */
export const MAX_INCLUSION_STATES = 4_096;

/** NFA states of a pattern as a bit set; state `segs.length` accepts. `**` may match nothing. */
function closure(segs: readonly Seg[], set: number): number {
  let out = set;
  for (let i = 0; i < segs.length; i++) if (out & (1 << i) && segs[i] === ANY) out |= 1 << (i + 1);
  return out;
}

function step(segs: readonly Seg[], set: number, sym: string): number {
  let out = 0;
  for (let i = 0; i < segs.length; i++) {
    if (!(set & (1 << i))) continue;
    const s = segs[i];
    if (s === ANY) out |= 1 << i;
    else if (s === ONE || s === sym) out |= 1 << (i + 1);
  }
  return closure(segs, out);
}

/** The one state a pattern's NFA moves to from state `i` on `sym` (-1: none); `**` loops on itself. */
function move(segs: readonly Seg[], i: number, sym: string): number {
  const s = segs[i];
  if (s === undefined) return -1;
  if (s === ANY) return i;
  return s === ONE || s === sym ? i + 1 : -1;
}

/** Literals of both patterns plus one "other" segment: every segment behaves like one of these. */
function alphabetOf(a: readonly Seg[], b: readonly Seg[]): string[] {
  return [...new Set([...a, ...b].filter((s) => s !== ONE && s !== ANY)), OTHER];
}

/**
 * True when some non-empty topic matches `a` and not `b`: a search over pairs
 * (one state of `a`'s NFA, the set of states `b`'s NFA can be in). `a`, the
 * client's filter, is never determinised, so its shape cannot make the search
 * exponential; the pairs are at most (|a|+1) x the subsets of `b` reachable,
 * bounded by {@link MAX_INCLUSION_STATES} (past it: `undefined`, undecided).
 */
function escapes(a: readonly Seg[], b: readonly Seg[]): boolean | undefined {
  const alphabet = alphabetOf(a, b);
  const accept = 1 << b.length;
  // A pair is (state of a) * 2^18 + (state set of b); states before any segment are kept apart (topics are non-empty).
  const seen = new Set<number>();
  const stack: Array<[number, number, boolean]> = [];
  const visit = (i: number, set: number, read: boolean): boolean => {
    const key = (read ? 1 : 0) + 2 * (i * 2 ** 18 + set);
    if (seen.has(key)) return false;
    seen.add(key);
    if (read && i === a.length && (set & accept) === 0) return true;
    stack.push([i, set, read]);
    return false;
  };
  if (visit(0, closure(b, 1), false)) return true;
  while (stack.length > 0) {
    if (seen.size > MAX_INCLUSION_STATES) return undefined;
    const [i, set, read] = stack.pop() as [number, number, boolean];
    // `**` may match nothing: move past it without reading.
    if (a[i] === ANY && visit(i + 1, set, read)) return true;
    for (const sym of alphabet) {
      const next = move(a, i, sym);
      if (next >= 0 && visit(next, step(b, set, sym), true)) return true;
    }
  }
  return false;
}

/** True when some non-empty topic matches both: a search over pairs of single NFA states, at most (|a|+1) x (|b|+1) x 2. */
function meet(a: readonly Seg[], b: readonly Seg[]): boolean {
  const alphabet = alphabetOf(a, b);
  const seen = new Set<number>();
  const stack: Array<[number, number, boolean]> = [];
  const visit = (i: number, j: number, read: boolean): boolean => {
    const key = (read ? 1 : 0) + 2 * (i * 64 + j);
    if (seen.has(key)) return false;
    seen.add(key);
    if (read && i === a.length && j === b.length) return true;
    stack.push([i, j, read]);
    return false;
  };
  if (visit(0, 0, false)) return true;
  while (stack.length > 0) {
    const [i, j, read] = stack.pop() as [number, number, boolean];
    if (a[i] === ANY && visit(i + 1, j, read)) return true;
    if (b[j] === ANY && visit(i, j + 1, read)) return true;
    for (const sym of alphabet) {
      const ni = move(a, i, sym);
      const nj = move(b, j, sym);
      if (ni >= 0 && nj >= 0 && visit(ni, nj, true)) return true;
    }
  }
  return false;
}

/**
 * Subscriptions indexed by pattern for fan-out: `match(topic)` walks a trie of
 * segments, so its cost depends on the topic's depth and the wildcards on its
 * path, not on how many subscriptions exist.
 */
export class TopicIndex<T> {
  readonly #root = new TrieNode<T>();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  add(pattern: TopicPattern, value: T): void {
    let node = this.#root;
    for (const s of pattern.segments) node = node.child(s);
    if (!node.values.has(value)) this.#size++;
    node.values.add(value);
  }

  remove(pattern: TopicPattern, value: T): void {
    const path: Array<[TrieNode<T>, string]> = [];
    let node: TrieNode<T> | undefined = this.#root;
    for (const s of pattern.segments) {
      const next: TrieNode<T> | undefined = node.children.get(s);
      if (!next) return;
      path.push([node, s]);
      node = next;
    }
    if (node.values.delete(value)) this.#size--;
    // Prune empty branches so a churn of subscriptions does not grow the trie.
    for (let k = path.length - 1; k >= 0; k--) {
      const [parent, s] = path[k] as [TrieNode<T>, string];
      const child = parent.children.get(s) as TrieNode<T>;
      if (child.values.size > 0 || child.children.size > 0) break;
      parent.children.delete(s);
    }
  }

  /** Every value whose pattern matches `topic`. */
  match(topic: string): Set<T> {
    const out = new Set<T>();
    collect(this.#root, topic.split('.'), 0, out);
    return out;
  }
}

class TrieNode<T> {
  readonly children = new Map<string, TrieNode<T>>();
  readonly values = new Set<T>();

  child(s: string): TrieNode<T> {
    let c = this.children.get(s);
    if (!c) {
      c = new TrieNode<T>();
      this.children.set(s, c);
    }
    return c;
  }
}

function collect<T>(node: TrieNode<T>, t: readonly string[], j: number, out: Set<T>): void {
  const any = node.children.get(ANY);
  if (any) for (let k = j; k <= t.length; k++) collect(any, t, k, out);
  if (j === t.length) {
    for (const v of node.values) out.add(v);
    return;
  }
  const seg = t[j] as string;
  const lit = node.children.get(seg);
  if (lit) collect(lit, t, j + 1, out);
  const one = node.children.get(ONE);
  if (one) collect(one, t, j + 1, out);
}
