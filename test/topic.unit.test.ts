import fc from 'fast-check';
import { TopicIndex, TopicPattern, assertTopic, patternProblem, topicProblem } from '../internal/topic/index.js';

/** Reference semantics, independent of the implementation: a regex over '.'-prefixed topics. */
function reference(pattern: string): RegExp {
  const body = pattern
    .split('.')
    .map((s) => (s === '**' ? '(?:\\.[^.]+)*' : s === '*' ? '\\.[^.]+' : `\\.${s}`))
    .join('');
  return new RegExp(`^${body}$`);
}
const refMatches = (pattern: string, topic: string): boolean => reference(pattern).test(`.${topic}`);

const patternSeg = fc.constantFrom('a', 'b', 'c', '*', '**');
const topicArb = fc.array(fc.constantFrom('a', 'b', 'c', 'd'), { minLength: 1, maxLength: 5 }).map((s) => s.join('.'));
const patternArb = (max: number) => fc.array(patternSeg, { minLength: 1, maxLength: max }).map((s) => s.join('.'));

/** Every topic over {a,b,c,d} with 1..5 segments: enough to separate patterns of up to 3 segments. */
const ALL_TOPICS: string[] = (() => {
  const out: string[] = [];
  const grow = (prefix: string[]): void => {
    if (prefix.length > 0) out.push(prefix.join('.'));
    if (prefix.length < 5) for (const s of ['a', 'b', 'c', 'd']) grow([...prefix, s]);
  };
  grow([]);
  return out;
})();

describe('topic validation', () => {
  it('accepts dotted names and refuses empty segments, wildcards and odd characters', () => {
    expect(topicProblem('orders.created')).toBeUndefined();
    expect(topicProblem('a-b_c.D9')).toBeUndefined();
    for (const bad of ['', '.a', 'a.', 'a..b', 'a.*', '**', 'a b', 'a/b', 'x'.repeat(201)]) expect(topicProblem(bad)).toBeDefined();
    expect(() => assertTopic('a.*')).toThrow(expect.objectContaining({ code: 'INVALID_TOPIC' }) as Error);
  });

  it('accepts wildcard patterns and refuses malformed ones with a typed error', () => {
    for (const ok of ['a', '*', '**', 'a.*.b', 'a.**', '**.z']) expect(patternProblem(ok)).toBeUndefined();
    for (const bad of ['', 'a..b', 'a.b*', '***', 'a.#', 'a.>']) expect(patternProblem(bad)).toBeDefined();
    expect(() => TopicPattern.compile('a.b*')).toThrow(expect.objectContaining({ code: 'INVALID_PATTERN' }) as Error);
  });
});

describe('pattern matching (property-based)', () => {
  it('matches exactly what the reference semantics match', () => {
    fc.assert(
      fc.property(patternArb(5), topicArb, (p, t) => {
        expect(TopicPattern.compile(p).matches(t)).toBe(refMatches(p, t));
      }),
      { numRuns: 3000 },
    );
  });

  it('its regular expression (what the database filters by) matches exactly what the pattern matches', () => {
    fc.assert(
      fc.property(patternArb(5), topicArb, (p, t) => {
        expect(new RegExp(TopicPattern.compile(p).regexSource()).test(t)).toBe(refMatches(p, t));
      }),
      { numRuns: 3000 },
    );
    expect(TopicPattern.compile('orders.*').regexSource()).toBe('^orders\\.[^.]+$');
  });

  it('`*` is exactly one segment and `**` zero or more', () => {
    const one = TopicPattern.compile('orders.*');
    expect(one.matches('orders.created')).toBe(true);
    expect(one.matches('orders')).toBe(false);
    expect(one.matches('orders.eu.created')).toBe(false);
    const many = TopicPattern.compile('orders.**');
    expect(many.matches('orders')).toBe(true);
    expect(many.matches('orders.eu.created')).toBe(true);
    expect(many.matches('invoices.x')).toBe(false);
  });

  it('within(): a filter is inside a grant exactly when every topic it matches, the grant matches', () => {
    fc.assert(
      fc.property(patternArb(3), patternArb(3), (f, g) => {
        const filter = TopicPattern.compile(f);
        const grant = TopicPattern.compile(g);
        const brute = ALL_TOPICS.every((t) => !filter.matches(t) || grant.matches(t));
        expect(filter.within(grant)).toBe(brute);
      }),
      { numRuns: 3000 },
    );
  });

  it('overlaps(): two patterns overlap exactly when some topic matches both', () => {
    fc.assert(
      fc.property(patternArb(3), patternArb(3), (a, b) => {
        const pa = TopicPattern.compile(a);
        const pb = TopicPattern.compile(b);
        const brute = ALL_TOPICS.some((t) => pa.matches(t) && pb.matches(t));
        expect(pa.overlaps(pb)).toBe(brute);
        expect(pb.overlaps(pa)).toBe(brute);
      }),
      { numRuns: 3000 },
    );
  });

  it('a wide filter is never inside a narrow grant', () => {
    expect(TopicPattern.compile('orders.**').within(TopicPattern.compile('orders.*'))).toBe(false);
    expect(TopicPattern.compile('orders.*').within(TopicPattern.compile('orders.**'))).toBe(true);
    expect(TopicPattern.compile('*.created').within(TopicPattern.compile('orders.*'))).toBe(false);
  });
});

describe('TopicIndex', () => {
  it('returns exactly the subscriptions whose pattern matches, through adds and removes', () => {
    fc.assert(
      fc.property(
        fc.array(patternArb(4), { minLength: 1, maxLength: 30 }),
        fc.array(topicArb, { minLength: 1, maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (patterns, topics, removals) => {
          const index = new TopicIndex<number>();
          const live = new Map<number, TopicPattern>();
          patterns.forEach((p, i) => {
            const compiled = TopicPattern.compile(p);
            index.add(compiled, i);
            live.set(i, compiled);
          });
          for (const r of removals) {
            const i = r % patterns.length;
            const compiled = live.get(i);
            if (compiled) {
              index.remove(compiled, i);
              live.delete(i);
            }
          }
          expect(index.size).toBe(live.size);
          for (const t of topics) {
            const expected = [...live]
              .filter(([, p]) => p.matches(t))
              .map(([i]) => i)
              .sort((x, y) => x - y);
            expect([...index.match(t)].sort((x, y) => x - y)).toEqual(expected);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
