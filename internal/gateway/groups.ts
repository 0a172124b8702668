import { describeError } from '../errors/index.js';
import type { EventLog, LogEvent } from '../eventlog/index.js';
import { groupLeaseGroup, type GroupStore } from '../groupstore/index.js';
import { PartitionCoordinator, type LeaseStore } from '../lease/index.js';
import type { Logger } from '../log/index.js';
import type { TopicPattern } from '../topic/index.js';
import { GatewayError } from './errors.js';
import type { GatewayMetrics } from './metrics.js';
import type { LogTail } from './tail.js';

/** A subscription that is a member of a consumer group. */
export interface GroupMember {
  readonly id: string;
  readonly maxInFlight: number;
  /** Deliveries this member holds unacknowledged (maintained by the group). */
  inFlight: number;
  /** Sends one delivery; false when the member can no longer receive. */
  send(event: LogEvent, delivery: number): boolean;
}

/** Settings the groups share. */
export interface GroupSettings {
  partitions: number;
  instance: string;
  ackTimeoutMs: number;
  maxDeliveries: number;
  redeliveryBaseMs: number;
  leaseTtlMs: number;
  leaseRenewMs: number;
  cursorFlushMs: number;
}

/** Ports and settings of a {@link GroupManager}. */
export interface GroupDeps {
  eventLog: EventLog;
  leases: LeaseStore;
  store: GroupStore;
  tail: LogTail;
  log: Logger;
  metrics: GatewayMetrics;
  settings: GroupSettings;
}

interface Delivery {
  event: LogEvent;
  member: GroupMember | undefined;
  deliveries: number;
  timer: NodeJS.Timeout | undefined;
  replay: boolean;
}

/** Most events read ahead per partition beyond what is in flight. */
const READ_AHEAD = 500;

/**
 * One partition of one group, while this gateway holds its lease: reads from
 * the durable cursor, delivers to local members with capacity, keeps per-key
 * order (a key's next event waits until the previous one is acked or dead),
 * redelivers on nack or ack timeout with backoff, dead-letters after
 * maxDeliveries and advances the cursor over the acked prefix (fenced by epoch).
 */
class GroupPartition {
  readonly #g: GroupRuntime;
  readonly partition: number;
  readonly epoch: number;
  #cursor = 0;
  #readUpTo = 0;
  #savedCursor = 0;
  #loaded = false;
  #stopped = false;
  #reading = false;
  #buffer: LogEvent[] = [];
  readonly #ready: Delivery[] = [];
  readonly #inflight = new Map<string, Delivery>();
  readonly #acked = new Set<number>();
  readonly #busyKeys = new Map<string, number>();
  /** Deliveries waiting for their redelivery timer. */
  readonly #waiting = new Set<Delivery>();
  #flushTimer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #replayTimer: NodeJS.Timeout | undefined;

  constructor(group: GroupRuntime, partition: number, epoch: number) {
    this.#g = group;
    this.partition = partition;
    this.epoch = epoch;
  }

  async start(): Promise<void> {
    const { store, settings } = this.#g.deps;
    this.#cursor = await store.loadCursor(this.#g.name, this.partition);
    // Stopped while loading: starting the timers now would leak them.
    if (this.#stopped) return;
    this.#savedCursor = this.#cursor;
    this.#readUpTo = this.#cursor;
    this.#loaded = true;
    this.#flushTimer = setInterval(() => void this.flush(), settings.cursorFlushMs);
    this.#replayTimer = setInterval(() => void this.#pullReplays(), 1_000);
    this.pump();
  }

  /** Stops delivering and forgets in-flight work (the next owner redelivers from the cursor). */
  abort(): void {
    this.#stopped = true;
    clearInterval(this.#flushTimer);
    clearInterval(this.#replayTimer);
    for (const d of [...this.#inflight.values(), ...this.#ready]) {
      clearTimeout(d.timer);
      if (d.member) d.member.inFlight--;
    }
    this.#inflight.clear();
    this.#ready.length = 0;
    this.#buffer = [];
    for (const d of this.#waiting) clearTimeout(d.timer);
    this.#waiting.clear();
  }

  /** Saves the cursor and stops. */
  async finish(): Promise<void> {
    await this.flush();
    await this.flush(); // the first may have been an older save already in flight
    this.abort();
  }

  has(eventId: string): boolean {
    return this.#inflight.has(eventId);
  }

  /** New events may exist, or a member gained capacity. */
  pump(): void {
    if (this.#stopped || !this.#loaded) return;
    this.#dispatch();
    if (!this.#reading && this.#buffer.length < READ_AHEAD && this.#readUpTo < this.#g.deps.tail.position(this.partition))
      void this.#read();
    this.#g.deps.metrics.consumerLag.set(
      { group: this.#g.name, partition: String(this.partition) },
      Math.max(0, this.#g.deps.tail.position(this.partition) - this.#cursor),
    );
  }

  async #read(): Promise<void> {
    this.#reading = true;
    try {
      const events = await this.#g.deps.eventLog.read({ partition: this.partition, afterSeq: this.#readUpTo, limit: READ_AHEAD });
      if (this.#stopped) return;
      for (const e of events) {
        if (e.seq !== this.#readUpTo + 1) break;
        this.#readUpTo = e.seq;
        if (this.#g.filter.matches(e.topic)) this.#buffer.push(e);
        else this.#markDone(e.seq);
      }
    } catch (err) {
      this.#g.deps.log.warn('group read failed', { group: this.#g.name, partition: this.partition, err: describeError(err) });
    } finally {
      this.#reading = false;
    }
    if (!this.#stopped) this.pump();
  }

  #dispatch(): void {
    while (this.#ready.length > 0) {
      const member = this.#g.pickMember();
      if (!member) return;
      this.#send(this.#ready.shift() as Delivery, member);
    }
    if (this.#buffer.length === 0) return;
    const keep: LogEvent[] = [];
    let full = false;
    for (const e of this.#buffer) {
      const key = e.key ?? e.id;
      // Pick a member only for an event that can go now, so round-robin stays fair.
      const member = full || this.#busyKeys.has(key) ? undefined : this.#g.pickMember();
      if (!member) {
        full ||= !this.#busyKeys.has(key);
        keep.push(e);
        continue;
      }
      this.#busyKeys.set(key, 1);
      this.#send({ event: e, member: undefined, deliveries: 0, timer: undefined, replay: false }, member);
    }
    this.#buffer = keep;
  }

  #send(d: Delivery, member: GroupMember): void {
    d.deliveries++;
    d.member = member;
    member.inFlight++;
    this.#inflight.set(d.event.id, d);
    if (d.deliveries > 1) this.#g.deps.metrics.redeliveries.inc({ group: this.#g.name });
    d.timer = setTimeout(() => this.#retry(d.event.id, undefined, 'ack timeout'), this.#g.deps.settings.ackTimeoutMs);
    if (!member.send(d.event, d.deliveries)) this.#retry(d.event.id, 0, 'member gone', false);
  }

  ack(eventId: string): boolean {
    const d = this.#take(eventId);
    if (!d) return false;
    if (d.replay) void this.#g.deps.store.resolveReplay(this.#g.name, eventId, true).catch(() => undefined);
    else this.#resolve(d.event);
    this.pump();
    return true;
  }

  /** Nack or timeout: back off and redeliver, or dead-letter after maxDeliveries. */
  nack(eventId: string, delayMs: number | undefined, reason: string): boolean {
    return this.#retry(eventId, delayMs, reason);
  }

  /** The member left: give its deliveries to someone else now, without counting a failure. */
  release(member: GroupMember): void {
    for (const d of [...this.#inflight.values()]) {
      if (d.member !== member) continue;
      this.#take(d.event.id);
      d.deliveries--;
      this.#ready.push(d);
    }
  }

  #retry(eventId: string, delayMs: number | undefined, reason: string, counts = true): boolean {
    const d = this.#take(eventId);
    if (!d) return false;
    const { settings, store, metrics } = this.#g.deps;
    if (counts && d.deliveries >= settings.maxDeliveries) {
      metrics.deadLetters.inc({ group: this.#g.name });
      void store.deadLetter(this.#g.name, d.event, d.deliveries, reason).then(
        () => (d.replay ? undefined : this.#resolve(d.event)),
        (err: unknown) => this.#g.deps.log.error('dead letter failed', { group: this.#g.name, id: eventId, err: describeError(err) }),
      );
      return true;
    }
    const wait = delayMs ?? settings.redeliveryBaseMs * 2 ** Math.max(0, d.deliveries - 1);
    if (!counts) d.deliveries--;
    d.timer = setTimeout(
      () => {
        d.timer = undefined;
        this.#waiting.delete(d);
        if (this.#stopped) return;
        this.#ready.push(d);
        this.pump();
      },
      Math.min(wait, 3_600_000),
    );
    this.#waiting.add(d);
    return true;
  }

  #take(eventId: string): Delivery | undefined {
    const d = this.#inflight.get(eventId);
    if (!d) return undefined;
    clearTimeout(d.timer);
    d.timer = undefined;
    this.#inflight.delete(eventId);
    if (d.member) {
      d.member.inFlight--;
      d.member = undefined;
    }
    return d;
  }

  /** The event is done (acked or dead): unblock its key and advance the cursor. */
  #resolve(e: LogEvent): void {
    this.#busyKeys.delete(e.key ?? e.id);
    this.#markDone(e.seq);
  }

  #markDone(seq: number): void {
    this.#acked.add(seq);
    while (this.#acked.has(this.#cursor + 1)) {
      this.#acked.delete(this.#cursor + 1);
      this.#cursor++;
    }
  }

  /** Saves the cursor; saves never overlap, so a slower older write cannot land after a newer one. */
  flush(): Promise<void> {
    this.#flushing ??= this.#save().finally(() => (this.#flushing = undefined));
    return this.#flushing;
  }

  async #save(): Promise<void> {
    if (this.#cursor === this.#savedCursor || !this.#loaded) return;
    const seq = this.#cursor;
    try {
      const ok = await this.#g.deps.store.saveCursor(this.#g.name, this.partition, seq, this.epoch);
      if (ok) this.#savedCursor = Math.max(this.#savedCursor, seq);
      else {
        this.#g.deps.log.warn('group cursor fenced', { group: this.#g.name, partition: this.partition, epoch: this.epoch });
        this.#g.fenced(this.partition, this);
      }
    } catch (err) {
      this.#g.deps.log.warn('cursor save failed', { group: this.#g.name, partition: this.partition, err: describeError(err) });
    }
  }

  async #pullReplays(): Promise<void> {
    if (this.#stopped) return;
    try {
      const replays = await this.#g.deps.store.takeReplays(this.#g.name, this.partition, 100);
      for (const r of replays) this.#ready.push({ event: r.event, member: undefined, deliveries: 0, timer: undefined, replay: true });
      if (replays.length > 0) this.pump();
    } catch (err) {
      this.#g.deps.log.warn('replay poll failed', { group: this.#g.name, err: describeError(err) });
    }
  }
}

/** One consumer group's presence on this gateway. */
class GroupRuntime {
  readonly name: string;
  readonly filter: TopicPattern;
  readonly deps: GroupDeps;
  readonly #members = new Map<string, GroupMember>();
  readonly #partitions = new Map<number, GroupPartition>();
  readonly #coordinator: PartitionCoordinator;
  #rr = 0;
  #unlisten: (() => void) | undefined;

  constructor(name: string, filter: TopicPattern, deps: GroupDeps) {
    this.name = name;
    this.filter = filter;
    this.deps = deps;
    const s = deps.settings;
    this.#coordinator = new PartitionCoordinator({
      store: deps.leases,
      group: groupLeaseGroup(name),
      member: s.instance,
      partitions: s.partitions,
      ttlMs: s.leaseTtlMs,
      intervalMs: s.leaseRenewMs,
      log: deps.log.child({ group: name }),
      handlers: {
        acquired: (lease) => {
          const gp = new GroupPartition(this, lease.partition, lease.epoch);
          this.#partitions.set(lease.partition, gp);
          gp.start().catch((err: unknown) => {
            deps.log.warn('group partition start failed', { group: name, partition: lease.partition, err: describeError(err) });
            this.#drop(lease.partition);
            this.#coordinator.forget(lease.partition);
          });
        },
        lost: (p) => this.#drop(p),
        releasing: async (p) => {
          const gp = this.#partitions.get(p);
          this.#partitions.delete(p);
          await gp?.finish();
        },
      },
    });
  }

  get memberCount(): number {
    return this.#members.size;
  }

  async start(): Promise<void> {
    this.#unlisten = this.deps.tail.listen((events) => {
      const touched = new Set(events.map((e) => e.partition));
      for (const p of touched) this.#partitions.get(p)?.pump();
    });
    await this.#coordinator.start();
  }

  async stop(): Promise<void> {
    this.#unlisten?.();
    await this.#coordinator.stop();
    for (const p of [...this.#partitions.keys()]) this.#drop(p);
  }

  /** A partition found a newer epoch downstream: stop it and let its lease lapse for a clean re-acquire. */
  fenced(p: number, gp: GroupPartition): void {
    if (this.#partitions.get(p) !== gp) return;
    this.#drop(p);
    this.#coordinator.forget(p);
  }

  #drop(p: number): void {
    const gp = this.#partitions.get(p);
    this.#partitions.delete(p);
    gp?.abort();
  }

  add(member: GroupMember): void {
    this.#members.set(member.id, member);
    this.#pumpAll();
  }

  remove(member: GroupMember): void {
    this.#members.delete(member.id);
    for (const gp of this.#partitions.values()) gp.release(member);
    this.#pumpAll();
  }

  /** Round-robin over local members with spare capacity. */
  pickMember(): GroupMember | undefined {
    const list = [...this.#members.values()];
    for (let i = 0; i < list.length; i++) {
      const m = list[(this.#rr + i) % list.length] as GroupMember;
      if (m.inFlight < m.maxInFlight) {
        this.#rr = (this.#rr + i + 1) % list.length;
        return m;
      }
    }
    return undefined;
  }

  ack(eventId: string): boolean {
    for (const gp of this.#partitions.values()) if (gp.has(eventId)) return gp.ack(eventId);
    return false;
  }

  nack(eventId: string, delayMs: number | undefined): boolean {
    for (const gp of this.#partitions.values()) if (gp.has(eventId)) return gp.nack(eventId, delayMs, 'nacked');
    return false;
  }

  #pumpAll(): void {
    for (const gp of this.#partitions.values()) gp.pump();
  }

  async flush(): Promise<void> {
    await Promise.all([...this.#partitions.values()].map((gp) => gp.flush()));
  }
}

/**
 * Consumer groups on this gateway. A group is present while it has local
 * members; its partitions are shared with the other gateways through leases
 * (lease group `group:<name>`), so each event goes to one member of the group.
 */
export class GroupManager {
  readonly #deps: GroupDeps;
  readonly #groups = new Map<string, GroupRuntime>();
  readonly #starting = new Map<string, Promise<GroupRuntime>>();
  readonly #stopping = new Set<Promise<void>>();

  constructor(deps: GroupDeps) {
    this.#deps = deps;
  }

  async join(name: string, filter: TopicPattern, member: GroupMember): Promise<void> {
    let runtime = this.#groups.get(name);
    if (runtime && runtime.filter.source !== filter.source) {
      throw new GatewayError('GROUP_MISMATCH', `group ${name} consumes ${runtime.filter.source}, not ${filter.source}`);
    }
    if (!runtime) {
      let starting = this.#starting.get(name);
      if (!starting) {
        starting = (async () => {
          const record = await this.#deps.store.register(name, filter.source);
          if (record.filter !== filter.source)
            throw new GatewayError('GROUP_MISMATCH', `group ${name} consumes ${record.filter}, not ${filter.source}`);
          const r = new GroupRuntime(name, filter, this.#deps);
          await r.start();
          this.#groups.set(name, r);
          return r;
        })();
        this.#starting.set(name, starting);
        starting.then(
          () => this.#starting.delete(name),
          () => this.#starting.delete(name),
        );
      }
      runtime = await starting;
      if (runtime.filter.source !== filter.source)
        throw new GatewayError('GROUP_MISMATCH', `group ${name} consumes ${runtime.filter.source}`);
    }
    runtime.add(member);
  }

  async leave(name: string, member: GroupMember): Promise<void> {
    const runtime = this.#groups.get(name);
    if (!runtime) return;
    runtime.remove(member);
    if (runtime.memberCount === 0) {
      this.#groups.delete(name);
      // Tracked so a shutdown waits for these releases before the database closes.
      const stopping = runtime.stop();
      this.#stopping.add(stopping);
      try {
        await stopping;
      } finally {
        this.#stopping.delete(stopping);
      }
    }
  }

  ack(name: string, eventId: string): boolean {
    return this.#groups.get(name)?.ack(eventId) ?? false;
  }

  nack(name: string, eventId: string, delayMs: number | undefined): boolean {
    return this.#groups.get(name)?.nack(eventId, delayMs) ?? false;
  }

  /** Flushes cursors and releases every group lease. */
  async stop(): Promise<void> {
    await Promise.all([...this.#starting.values()].map((p) => p.catch(() => undefined)));
    const all = [...this.#groups.values()];
    this.#groups.clear();
    await Promise.all(
      all.map(async (r) => {
        await r.flush();
        await r.stop();
      }),
    );
    await Promise.all([...this.#stopping].map((p) => p.catch(() => undefined)));
  }
}
