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

  /** True when every topic this pattern matches, `other` matches too (`other` ⊇ `this`). */
  within(other: TopicPattern): boolean {
    return !someWord(this.#segs, other.#segs, (mine, theirs) => mine && !theirs);
  }

  /** True when some topic matches both patterns. */
  overlaps(other: TopicPattern): boolean {
    return someWord(this.#segs, other.#segs, (a, b) => a && b);
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

/**
 * Explores every non-empty topic both patterns can read, as pairs of NFA state
 * sets, and reports whether `test(aAccepts, bAccepts)` holds for one of them.
 * Literals of either pattern plus one "other" segment are the whole alphabet
 * that matters, and there are at most 2^17 x 2^17 (in practice a handful of)
 * state pairs, so this decides inclusion and overlap exactly.
 */
function someWord(a: readonly Seg[], b: readonly Seg[], test: (aAccepts: boolean, bAccepts: boolean) => boolean): boolean {
  const alphabet = [...new Set([...a, ...b].filter((s) => s !== ONE && s !== ANY)), OTHER];
  const start: [number, number] = [closure(a, 1), closure(b, 1)];
  const seen = new Set<string>([start.join()]);
  const queue = [start];
  while (queue.length > 0) {
    const [sa, sb] = queue.pop() as [number, number];
    for (const sym of alphabet) {
      const na = step(a, sa, sym);
      const nb = step(b, sb, sym);
      if (na === 0) continue; // `a` can never accept again, and both questions need it to
      if (test((na & (1 << a.length)) !== 0, (nb & (1 << b.length)) !== 0)) return true;
      const key = `${na},${nb}`;
      if (!seen.has(key)) {
        seen.add(key);
        queue.push([na, nb]);
      }
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
