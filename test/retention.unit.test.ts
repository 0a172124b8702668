/**
 * Retention policies and the keeper's rounds on the in-memory event log (no
 * database): what may be trimmed by age, by count, for compacted topics and for
 * consumer groups (interest retention with hard caps), and what never is.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { MemoryEventLog, MemoryEventStorage, type EventInput, type LogEvent } from '../internal/eventlog/index.js';
import type { GroupMember } from '../internal/groups/index.js';
import { MemoryGroupStore } from '../internal/groupstore/index.js';
import { createLogger } from '../internal/log/index.js';
import { eventually } from './harness/process.js';
import { MemoryLog, memoryGroupManager } from './harness/memory-ports.js';
import { DrainTraffic } from '../internal/drainer/index.js';
import {
  BUSY_DELETE_BATCH,
  DELETE_BATCH,
  RetentionKeeper,
  RetentionPolicies,
  SCAN_BUDGET,
  type AppendTraffic,
  type GroupInterest,
} from '../internal/retention/index.js';
import { TopicPattern } from '../internal/topic/index.js';

const logger = createLogger({ level: 'error' });
let n = 0;
const ev = (topic: string, key: string | null, payload: unknown = { n: ++n }): EventInput => ({
  id: `r-${++n}`,
  topic,
  key,
  payload,
  headers: {},
  createdAt: new Date(),
});

function setup(policies: string): { log: MemoryEventLog; keeper: RetentionKeeper } {
  const log = new MemoryEventLog(new MemoryEventStorage());
  return { log, keeper: new RetentionKeeper({ log, policies: RetentionPolicies.parse(policies, 'RETENTION'), logger }) };
}

/** Appends one event per call (each its own append, so only the very last one is protected). */
async function append(log: MemoryEventLog, events: EventInput[], partition = 0): Promise<LogEvent[]> {
  const out: LogEvent[] = [];
  for (const e of events) out.push(...(await log.append(partition, 1, [e])).appended);
  return out;
}

describe('retention policies', () => {
  it('takes the first topic policy that matches, else the default, and reports what it keeps', () => {
    const p = RetentionPolicies.parse(
      JSON.stringify({
        default: { maxAge: '7d' },
        topics: [
          { match: 'audit.**', maxAge: '365d' },
          { match: 'process.state', compact: true },
          { match: 'orders.*', maxEvents: 100, keepForGroups: true, hardMaxEvents: 1000 },
        ],
        tombstoneGrace: '2h',
      }),
      'RETENTION',
    );
    expect(p.forTopic('audit.login.failed').maxAgeMs).toBe(365 * 86_400_000);
    expect(p.forTopic('process.state').compact).toBe(true);
    expect(p.forTopic('orders.created')).toMatchObject({ maxEvents: 100, keepForGroups: true, hardMaxEvents: 1000 });
    expect(p.forTopic('misc')).toBe(p.default);
    expect(p.tombstoneGraceMs).toBe(7_200_000);
    expect(p.active && p.compacts).toBe(true);
    expect(RetentionPolicies.keepAll().active).toBe(false);
  });

  it.each([
    ['not JSON', '{', /not valid JSON/],
    ['an unknown field', '{"default":{"maxAge":"1d","maxSize":3}}', /unknown field "maxSize"/],
    ['a bad duration', '{"default":{"maxAge":"soon"}}', /"maxAge" must be a duration/],
    ['a bad count', '{"topics":[{"match":"a.*","maxEvents":0}]}', /"maxEvents" must be a whole number/],
    ['a bad pattern', '{"topics":[{"match":"a..b","maxAge":"1d"}]}', /"match" must be a topic pattern/],
    ['a compacted policy with an age', '{"topics":[{"match":"s","compact":true,"maxAge":"1d"}]}', /compacted policy/],
    ['a hard cap without keepForGroups', '{"topics":[{"match":"s","maxAge":"1d","hardMaxAge":"2d"}]}', /keepForGroups/],
    ['a hard cap below the soft one', '{"topics":[{"match":"s","maxAge":"2d","keepForGroups":true,"hardMaxAge":"1d"}]}', /hardMaxAge/],
    ['a duty cycle of 0', '{"default":{"maxAge":"1d"},"dutyCycle":0}', /dutyCycle must be a number above 0 and at most 1/],
    ['a duty cycle above 1', '{"default":{"maxAge":"1d"},"dutyCycle":1.5}', /dutyCycle/],
    ['a duty cycle as text', '{"default":{"maxAge":"1d"},"dutyCycle":"20%"}', /dutyCycle/],
  ])('refuses %s, naming where', (_what, text, message) => {
    expect(() => RetentionPolicies.parse(text, 'RETENTION')).toThrow(
      expect.objectContaining({ code: 'INVALID_POLICY', message: expect.stringMatching(message) as string }) as Error,
    );
  });
});

describe('RetentionKeeper pacing', () => {
  /** A log whose trim calls each take `ms` (as a busy database's would). */
  function slowTrims(policies: string, ms: number): { log: MemoryEventLog; keeper: RetentionKeeper; calls: () => number } {
    const log = new MemoryEventLog(new MemoryEventStorage());
    let calls = 0;
    const trim: MemoryEventLog['trim'] = async (...args) => {
      calls++;
      await sleep(ms);
      return log.trim(...args);
    };
    // Every other method is the log's own, called on it (its private fields are on the log).
    const slow = new Proxy(log, {
      get: (target, name) => {
        if (name === 'trim') return trim;
        const value: unknown = Reflect.get(target, name, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    return {
      log,
      keeper: new RetentionKeeper({ log: slow, policies: RetentionPolicies.parse(policies, 'RETENTION'), logger }),
      calls: () => calls,
    };
  }

  it('waits after each storage call so that its calls take at most the duty cycle (default 0.2)', async () => {
    const { log, keeper, calls } = slowTrims('{"default":{"maxEvents":1}}', 40);
    expect(keeper.policies.dutyCycle).toBe(0.2);
    await log.claim(0, 1);
    await append(log, [ev('a.x', 'k'), ev('a.x', 'k'), ev('a.x', 'k')]);
    const started = performance.now();
    expect(await keeper.round(0, 1, [])).toMatchObject({ first: 3, deleted: 2 });
    // Each 40 ms trim call is followed by a 160 ms pause: a lower bound, whatever the machine's load.
    expect(calls()).toBeGreaterThanOrEqual(1);
    expect(performance.now() - started).toBeGreaterThanOrEqual(calls() * 40 * 5 - 5);
  });

  it('does not wait with a duty cycle of 1, and a stop cuts a pause short', async () => {
    const eager = slowTrims('{"default":{"maxEvents":1},"dutyCycle":1}', 40);
    await eager.log.claim(0, 1);
    await append(eager.log, [ev('a.x', 'k'), ev('a.x', 'k'), ev('a.x', 'k')]);
    expect(await eager.keeper.round(0, 1, [])).toMatchObject({ deleted: 2 });

    const paced = slowTrims('{"default":{"maxEvents":1},"dutyCycle":0.01}', 40);
    await paced.log.claim(0, 1);
    await append(paced.log, [ev('a.x', 'k'), ev('a.x', 'k'), ev('a.x', 'k')]);
    const stop = new AbortController();
    const round = paced.keeper.round(0, 1, [], stop.signal);
    // Stopped once the first trim call is done (not after a fixed sleep: the scan before it is
    // paced too, and on a loaded machine its own pause outlasted 100 ms, in a CI run).
    await eventually(async () => (await paced.log.retention(0)).first === 3, 10_000, 'the first trim call');
    const stopped = performance.now();
    stop.abort();
    // A pause of 99 × the 40 ms call (about 4 s) follows it; the stop ends it at once.
    await expect(round).rejects.toMatchObject({ name: 'AbortError' });
    expect(performance.now() - stopped).toBeLessThan(3_000);
  });
});

describe('RetentionKeeper and the appends it shares the database with', () => {
  /** A log that records the size of every trim call. */
  function recordingTrims(policies: string, traffic: AppendTraffic): { log: MemoryEventLog; keeper: RetentionKeeper; sizes: number[] } {
    const log = new MemoryEventLog(new MemoryEventStorage());
    const sizes: number[] = [];
    const recording = new Proxy(log, {
      get: (target, name) => {
        if (name === 'trim')
          return (...args: Parameters<MemoryEventLog['trim']>) => {
            sizes.push(args[3]);
            return log.trim(...args);
          };
        const value: unknown = Reflect.get(target, name, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    return {
      log,
      sizes,
      keeper: new RetentionKeeper({ log: recording, policies: RetentionPolicies.parse(policies, 'RETENTION'), logger, traffic }),
    };
  }

  it('deletes in small batches while appends keep coming, in full ones when they stop', async () => {
    let busy = true;
    const waits: number[] = [];
    const traffic: AppendTraffic = {
      quiet: (maxWaitMs) => {
        waits.push(maxWaitMs);
        return Promise.resolve(busy);
      },
    };
    const { log, keeper, sizes } = recordingTrims('{"default":{"maxEvents":1},"dutyCycle":1}', traffic);
    await log.claim(0, 1);
    await log.append(
      0,
      1,
      Array.from({ length: 120 }, () => ev('a.x', null)),
    );
    await log.append(0, 1, [ev('a.x', null)]);
    expect(await keeper.round(0, 1, [])).toMatchObject({ first: 121, deleted: 120, behind: false });
    expect(sizes).toEqual([BUSY_DELETE_BATCH, BUSY_DELETE_BATCH, BUSY_DELETE_BATCH, BUSY_DELETE_BATCH, BUSY_DELETE_BATCH]);
    // Each call gave way first, for at least the shortest wait.
    expect(waits.length).toBeGreaterThan(sizes.length);
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(20);

    busy = false;
    sizes.length = 0;
    await log.append(
      0,
      1,
      Array.from({ length: 120 }, () => ev('a.x', null)),
    );
    await log.append(0, 1, [ev('a.x', null)]);
    expect(await keeper.round(0, 1, [])).toMatchObject({ first: 242, deleted: 121, behind: false });
    expect(sizes).toEqual([DELETE_BATCH, DELETE_BATCH]);
  });

  it('reports a round that ran out of budget with expired events left as behind, then takes full batches, busy or not, until it catches up', async () => {
    const busy: AppendTraffic = { quiet: () => Promise.resolve(true) };
    const { log, keeper, sizes } = recordingTrims('{"default":{"maxEvents":1},"dutyCycle":1}', busy);
    await log.claim(0, 1);
    for (let i = 0; i < SCAN_BUDGET + 500; i += 1_000)
      await log.append(
        0,
        1,
        Array.from({ length: 1_000 }, () => ev('a.x', null)),
      );
    await log.append(0, 1, [ev('a.x', null)]);
    const first = await keeper.round(0, 1, []);
    expect(first).toMatchObject({ behind: true });
    expect(first.deleted).toBeGreaterThanOrEqual(SCAN_BUDGET - DELETE_BATCH);
    expect(new Set(sizes)).toEqual(new Set([BUSY_DELETE_BATCH]));
    sizes.length = 0;
    expect(await keeper.round(0, 1, [])).toMatchObject({ behind: false, first: SCAN_BUDGET + 1_001 });
    expect(new Set(sizes)).toEqual(new Set([DELETE_BATCH]));
    // Caught up: small batches again while appends keep coming; nothing left, not behind.
    sizes.length = 0;
    expect(await keeper.round(0, 1, [])).toMatchObject({ behind: false, deleted: 0 });
    expect(sizes).toEqual([BUSY_DELETE_BATCH]);
  });
});

describe('DrainTraffic', () => {
  it('says quiet at once when no batch ran lately, and busy while one runs or just ended', async () => {
    const traffic = new DrainTraffic();
    const started = performance.now();
    expect(await traffic.quiet(5_000)).toBe(false);
    expect(performance.now() - started).toBeLessThan(1_000);
    traffic.begin();
    // A batch under way: released at its deadline, still busy.
    expect(await traffic.quiet(30)).toBe(true);
    // Released by the batch's end, well before its deadline.
    const waiting = traffic.quiet(60_000);
    setTimeout(() => traffic.end(), 20);
    const t = performance.now();
    expect(await waiting).toBe(true);
    expect(performance.now() - t).toBeLessThan(30_000);
    // A stop releases a wait too.
    traffic.begin();
    const stop = new AbortController();
    const stopped = traffic.quiet(60_000, stop.signal);
    stop.abort();
    expect(await stopped).toBe(true);
    traffic.end();
    // Quiet again a while after the last batch.
    await sleep(300);
    expect(await traffic.quiet(5_000)).toBe(false);
  });
});

/** Serves group `name` (with `tags`) over `log` as a gateway would, from the earliest event, with one member. */
async function serve(
  log: MemoryLog,
  name: string,
  tags: readonly string[],
): Promise<{ got: LogEvent[]; notices: unknown[]; stop: () => Promise<void> }> {
  const manager = memoryGroupManager(log, { settings: { partitions: 1 } });
  const got: LogEvent[] = [];
  const notices: unknown[] = [];
  const member: GroupMember = {
    id: 'm',
    maxInFlight: 10,
    send: (e) => got.push(e) > 0,
    trimmed: (partition, firstSeq) => void notices.push({ partition, firstSeq }),
  };
  const membership = await manager.join(name, TopicPattern.compile('orders.*'), member, 'earliest', tags);
  membership.activate();
  return { got, notices, stop: () => manager.stop() };
}

describe('RetentionKeeper rounds', () => {
  it('trims the prefix older than maxAge, stops at the first event to keep, and never takes the last append', async () => {
    const { log, keeper } = setup('{"default":{"maxAge":"1s"}}');
    await log.claim(0, 1);
    await append(log, [ev('a.x', 'k'), ev('a.x', 'k'), ev('a.x', 'k')]);
    await sleep(1_100);
    await append(log, [ev('a.x', 'k'), ev('a.x', 'k')]);
    // The two newest are young; the three old ones go.
    expect(await keeper.round(0, 1, [])).toMatchObject({ first: 4, deleted: 3 });
    await sleep(1_100);
    // Everything is old now, but the last append (seq 5) stays: the sequence continues from it.
    expect(await keeper.round(0, 1, [])).toMatchObject({ first: 5, deleted: 1 });
    expect((await log.read({ partition: 0, limit: 10 })).map((e) => e.seq)).toEqual([5]);
  });

  it('trims by maxEvents per partition, and a long-kept topic holds back those behind it', async () => {
    const { log, keeper } = setup('{"default":{"maxEvents":2},"topics":[{"match":"keep.*","maxAge":"30d"}]}');
    await log.claim(0, 1);
    await append(log, [ev('x.a', null), ev('x.a', null), ev('keep.me', null), ev('x.a', null), ev('x.a', null), ev('x.a', null)]);
    // 1 and 2 have two or more newer events; 3 must stay, so 4 and later wait behind it.
    expect(await keeper.round(0, 1, [])).toMatchObject({ first: 3, deleted: 2 });
  });

  it('keeps events a registered group has not acked, until a hard cap forces them out', async () => {
    const { log, keeper } = setup('{"topics":[{"match":"orders.*","maxEvents":1,"keepForGroups":true,"hardMaxEvents":4}]}');
    await log.claim(0, 1);
    await append(
      log,
      [1, 2, 3, 4].map(() => ev('orders.created', null)),
    );
    const billing: GroupInterest = { name: 'billing', filter: TopicPattern.compile('orders.*'), cursors: new Map([[0, 1]]) };
    const other: GroupInterest = { name: 'audit', filter: TopicPattern.compile('audit.*'), cursors: new Map() };
    // Expired by count are 1..3, but billing acked only 1: 2 and 3 are held.
    expect(await keeper.round(0, 1, [billing, other])).toMatchObject({ first: 2, deleted: 1, forced: [] });
    await append(
      log,
      [5, 6].map(() => ev('orders.created', null)),
    );
    // Now 2 has 4 newer events: the hard cap forces it out, and billing is named.
    expect(await keeper.round(0, 1, [billing])).toMatchObject({ first: 3, deleted: 1, forced: ['billing'] });
  });

  it('holds a group with tags only for its own events: served, its cursor passes over the others; unserved, they are trimmed and it is not told of them on its return', async () => {
    // The group is served as a gateway serves it (GroupManager), over a log holding the same
    // events the keeper trims: vip-tagged orders at 1 and 12, untagged orders around them.
    const tagged = (i: number): boolean => i === 1 || i === 12;
    const topics = Array.from({ length: 20 }, (_, k) => k + 1);
    const groupLog = new MemoryLog();
    const store = new MemoryGroupStore();
    const manager = memoryGroupManager(groupLog, { store, settings: { partitions: 1 } });
    try {
      const got: LogEvent[] = [];
      const notices: unknown[] = [];
      const m: GroupMember = {
        id: 'm',
        maxInFlight: 10,
        send: (e) => got.push(e) > 0,
        trimmed: (partition, firstSeq) => void notices.push({ partition, firstSeq }),
      };
      const membership = await manager.join('vip-billing', TopicPattern.compile('orders.*'), m, 'earliest', ['vip']);
      membership.activate();
      groupLog.publish(
        topics.map((i) => ({ partition: 0, key: `k${i}`, topic: 'orders.created', payload: i, ...(tagged(i) ? { tags: ['vip'] } : {}) })),
      );
      const { log, keeper } = setup('{"topics":[{"match":"orders.*","maxEvents":1,"keepForGroups":true}]}');
      await log.claim(0, 1);
      await append(
        log,
        topics.map((i) => ({ ...ev('orders.created', `k${i}`, i), ...(tagged(i) ? { tags: ['vip'] } : {}) })),
      );
      await log.append(0, 1, [ev('misc.last', null)]);
      const interest = async (): Promise<GroupInterest> => ({
        name: 'vip-billing',
        filter: TopicPattern.compile('orders.*'),
        cursors: await store.loadCursors('vip-billing'),
      });
      const cursorAt = (seq: number) =>
        eventually(async () => ((await store.loadCursor('vip-billing', 0)) === seq ? true : undefined), 10_000, `the cursor at ${seq}`);

      // Both tagged events arrive (different keys); only the first is acked. The cursor passes
      // over the untagged 2..11 and stops before 12, the one the group still owes an ack.
      await eventually(() => Promise.resolve(got.length === 2 || undefined), 10_000, 'the two vip events');
      expect(got.map((e) => e.seq)).toEqual([1, 12]);
      expect(membership.ack((got[0] as LogEvent).id)).toBe(true);
      await cursorAt(11);
      // Every orders event is expired (maxEvents 1): the hold is at the group's cursor, so the
      // untagged events the group passed over go, and 12 (its own) stays.
      expect(await keeper.round(0, 1, [await interest()])).toMatchObject({ first: 12, deleted: 11, forced: [] });
      // Acked: the cursor passes the untagged 13..20 at once, and nothing holds them.
      expect(membership.ack((got[1] as LogEvent).id)).toBe(true);
      await cursorAt(20);
      expect(await keeper.round(0, 1, [await interest()])).toMatchObject({ first: 21, deleted: 9, forced: [] });
      expect(notices).toEqual([]);

      // A group nobody serves does not read, so its cursor stays. It holds only what it wants
      // after it: the untagged a and b go, vip-tagged c stays (and what follows it, a prefix).
      const { log: idleLog, keeper: idleKeeper } = setup('{"topics":[{"match":"orders.*","maxEvents":1,"keepForGroups":true}]}');
      await idleLog.claim(0, 1);
      await append(idleLog, [ev('orders.created', 'a'), ev('orders.created', 'b'), { ...ev('orders.created', 'c'), tags: ['vip'] }]);
      await idleLog.append(0, 1, [ev('misc.last', null)]);
      const idle: GroupInterest = { name: 'idle-vip', filter: TopicPattern.compile('orders.*'), cursors: new Map(), tags: ['vip'] };
      expect(await idleKeeper.round(0, 1, [idle])).toMatchObject({ first: 3, deleted: 2, forced: [] });
      // The same group without tags would have held all three.
      const { log: plainLog, keeper: plainKeeper } = setup('{"topics":[{"match":"orders.*","maxEvents":1,"keepForGroups":true}]}');
      await plainLog.claim(0, 1);
      await append(plainLog, [ev('orders.created', 'a'), ev('orders.created', 'b'), { ...ev('orders.created', 'c'), tags: ['vip'] }]);
      await plainLog.append(0, 1, [ev('misc.last', null)]);
      expect(await plainKeeper.round(0, 1, [{ ...idle, tags: [] }])).toMatchObject({ first: 1, deleted: 0 });

      // On its return the group is not told of the untagged events it never wanted: the log
      // recorded that no event with tags was trimmed (taggedTo 0), and its reader goes on at c.
      const trimmedIdle = await idleLog.retention(0);
      expect(trimmedIdle).toMatchObject({ first: 3, taggedTo: 0 });
      const back = new MemoryLog();
      back.publish([
        { partition: 0, key: 'a', topic: 'orders.created', payload: 1 },
        { partition: 0, key: 'b', topic: 'orders.created', payload: 2 },
        { partition: 0, key: 'c', topic: 'orders.created', payload: 3, tags: ['vip'] },
      ]);
      back.trim(0, trimmedIdle.first, trimmedIdle.taggedTo);
      const returned = await serve(back, 'idle-vip', ['vip']);
      try {
        await eventually(() => Promise.resolve(returned.got.length === 1 || undefined), 10_000, 'the vip event after the trimmed prefix');
        expect(returned.got.map((e) => e.seq)).toEqual([3]);
        expect(returned.notices).toEqual([]);
      } finally {
        await returned.stop();
      }
      // Had an event with tags been trimmed after its cursor (a hard cap, say), it is told.
      const capped = new MemoryLog();
      capped.publish([
        { partition: 0, key: 'a', topic: 'orders.created', payload: 1, tags: ['vip'] },
        { partition: 0, key: 'b', topic: 'orders.created', payload: 2, tags: ['vip'] },
      ]);
      capped.trim(0, 2, 1);
      const told = await serve(capped, 'capped-vip', ['vip']);
      try {
        await eventually(() => Promise.resolve(told.got.length === 1 || undefined), 10_000, 'the event after the trimmed one');
        expect(told.notices).toEqual([{ partition: 0, firstSeq: 2 }]);
      } finally {
        await told.stop();
      }
    } finally {
      await manager.stop();
    }
  });

  it("compacts: keeps every key's latest value in the snapshot, then trims what the snapshot reflects", async () => {
    const { log, keeper } = setup('{"topics":[{"match":"state.*","compact":true}],"default":{"maxEvents":1}}');
    await log.claim(0, 1);
    const appended = await append(log, [
      ev('state.p', 'h1', { v: 1 }),
      ev('state.p', 'h2', { v: 1 }),
      ev('state.p', 'h1', { v: 2 }),
      ev('misc.x', null),
    ]);
    // What the drainer does after each append: the keys go into the snapshot at once.
    await keeper.appended(0, 1, appended.slice(0, 2));
    await keeper.appended(0, 1, appended.slice(2));
    expect((await log.latestValue('state.p', 'h1'))?.payload).toEqual({ v: 2 });
    expect((await log.retention(0)).compactedTo).toBe(4);
    const r = await keeper.round(0, 1, []);
    expect(r.first).toBe(4);
    // The log no longer holds h1's first value, the snapshot still holds both keys.
    expect((await log.read({ partition: 0, limit: 10 })).map((e) => e.seq)).toEqual([4]);
    expect((await log.snapshot(TopicPattern.compile('state.*'), undefined, 10)).map((e) => [e.key, e.payload])).toEqual([
      ['h1', { v: 2 }],
      ['h2', { v: 1 }],
    ]);
  });

  it('catches the snapshot up after a holder died between its append and its snapshot write', async () => {
    const { log, keeper } = setup('{"topics":[{"match":"state.*","compact":true}]}');
    await log.claim(0, 1);
    await append(log, [ev('state.p', 'h1', { v: 1 }), ev('state.p', 'h1', { v: 2 })]);
    // No `appended` call: the previous holder died before it. A new keeper (a new holder) catches up.
    await log.claim(0, 2);
    await keeper.round(0, 2, []);
    expect((await log.latestValue('state.p', 'h1'))?.payload).toEqual({ v: 2 });
    expect((await log.retention(0)).compactedTo).toBe(2);
  });

  it('trims nothing past a hole, and nothing at all when fenced', async () => {
    const { log, keeper } = setup('{"default":{"maxEvents":1}}');
    await log.claim(0, 1);
    await append(
      log,
      [1, 2, 3, 4, 5].map(() => ev('x.y', null)),
    );
    log.punchHole(0, 3);
    expect(await keeper.round(0, 1, [])).toMatchObject({ first: 3, deleted: 2 });
    await log.claim(0, 2);
    await expect(keeper.round(0, 1, [])).rejects.toMatchObject({ code: 'FENCED' });
  });
});
