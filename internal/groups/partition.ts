import { describeError } from '../errors/index.js';
import type { LogEvent } from '../eventlog/index.js';
import { Fifo } from './fifo.js';
import type { GroupRuntime } from './runtime.js';
import type { Delivery, Slot } from './slot.js';

/** Most events read ahead per partition beyond what is in flight. */
const READ_AHEAD = 500;
/**
 * How far past what it reads an owner raises the delivered mark, so a partition
 * with a trickle of events writes the mark once per this many events, not per
 * event. The price: after a failover, up to this many events published later
 * arrive with delivery 2.
 */
const MARK_AHEAD = 64;
/** Wait before reading again after a failed read. */
const READ_RETRY_MS = 1_000;
/** Longest redelivery delay (a NACK's delayMs is bounded by the protocol too). */
const MAX_REDELIVERY_DELAY_MS = 3_600_000;

function keyOf(e: LogEvent): string {
  return e.key ?? e.id;
}

/**
 * One partition of one group, while this gateway holds its lease: reads from
 * the durable cursor, delivers to local members with capacity, keeps per-key
 * order (a key's next event waits until the previous one is acked or dead),
 * redelivers on nack or ack timeout with backoff, dead-letters after
 * maxDeliveries and advances the cursor over the acked prefix (fenced by epoch).
 *
 * Cost per event is O(1): deliveries that may go now wait in a FIFO, later
 * events of a busy key wait in that key's own FIFO and move up when it frees.
 *
 * Delivery counts survive a change of owner (failover or rebalance) without a
 * write per first delivery: before events are first sent, the partition's
 * delivered mark is raised past them (and MARK_AHEAD further), in a write that
 * runs alongside the read itself and only when a read goes past the mark; a
 * count is written (without waiting for it) only when an event is redelivered.
 * A new owner starts an event at its recorded count, else at 1 if it is under
 * the inherited mark (it may have reached a member), else at 0. So an event
 * that may have reached a member before always arrives with `delivery > 1`; the
 * count itself can be one low if the owner died with its last count write in
 * flight, and after a failover events the previous owner had not sent yet but
 * were under its mark (at most READ_AHEAD + MARK_AHEAD per partition) count as
 * delivered once.
 */
export class GroupPartition {
  readonly #g: GroupRuntime;
  readonly partition: number;
  readonly epoch: number;
  /** Queued in the group's list of partitions waiting for a member. */
  hungry = false;
  #cursor = 0;
  #readUpTo = 0;
  #savedCursor = 0;
  #loaded = false;
  #stopped = false;
  #reading = false;
  /** Deliveries that may go now: first deliveries of free keys, due redeliveries, replays. */
  readonly #ready = new Fifo<Delivery>();
  /** Keys with an event in progress -> later events of the key, in order (null while there are none). */
  readonly #keys = new Map<string, Fifo<LogEvent> | null>();
  /** Events read but not yet sent once: bounds the read-ahead. */
  #unsent = 0;
  readonly #inflight = new Set<Delivery>();
  /** Deliveries waiting for their redelivery timer. */
  readonly #waiting = new Set<Delivery>();
  /** Settled sequences above the cursor. */
  readonly #done = new Set<number>();
  /** A trimmed range `(from - 1, to]` skipped: counted settled once the cursor reaches it. */
  #trimmed: { from: number; to: number } | undefined;
  /** Delivered mark inherited from earlier owners: events up to it may have reached a member. */
  #inherited = 0;
  /** Delivered mark as written by this owner (ahead of every first delivery). */
  #marked = 0;
  /** Delivery counts recorded by earlier owners, by event id, until the event is read. */
  #prior = new Map<string, number>();
  /** Sequences of events whose count this owner recorded (forgotten once the cursor passes them). */
  readonly #recorded = new Set<number>();
  /** Retries a failed read later rather than at once. */
  #backoff: NodeJS.Timeout | undefined;
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
    const name = this.#g.name;
    const saved = await store.loadCursor(name, this.partition);
    this.#cursor = saved;
    const [state, { first, taggedTo }] = await Promise.all([
      store.loadDeliveries(name, this.partition, this.#cursor),
      this.#g.deps.eventLog.retention(this.partition),
    ]);
    // Stopped while loading: starting the timers now would leak them.
    if (this.#stopped) return;
    // Retention trimmed what this group had not read: it goes on from the first event left
    // (the cursor moves now; the next flush saves it).
    if (this.#cursor < first - 1) this.#skipTrimmed(this.#cursor, first, taggedTo);
    this.#inherited = state.deliveredUpTo;
    this.#marked = state.deliveredUpTo;
    this.#prior = new Map(state.counts);
    // Counts of events behind the cursor are settled history.
    void store.forgetDeliveries(name, this.partition, this.#cursor).catch(this.#warn('forgetting settled delivery counts failed'));
    this.#savedCursor = saved;
    this.#readUpTo = this.#cursor;
    this.#loaded = true;
    this.#flushTimer = setInterval(() => void this.flush(), settings.cursorFlushMs);
    this.#replayTimer = setInterval(() => void this.#pullReplays(), 1_000);
    this.pump();
  }

  /** Stops delivering and forgets in-flight work (the next owner redelivers from the cursor). */
  abort(): void {
    if (!this.#stopped && !this.#g.holds(this.partition)) {
      // This gateway no longer reports the partition's lag: a frozen last value (often 0)
      // would hide the lag of a partition nobody consumes. Its next owner reports it.
      this.#g.deps.metrics.consumerLag.remove({ group: this.#g.name, partition: String(this.partition) });
    }
    this.#stopped = true;
    clearInterval(this.#flushTimer);
    clearInterval(this.#replayTimer);
    clearTimeout(this.#backoff);
    for (const d of [...this.#inflight]) this.#take(d);
    for (const d of this.#waiting) clearTimeout(d.timer);
    this.#waiting.clear();
    this.#ready.drain();
    this.#keys.clear();
    this.#unsent = 0;
  }

  /** Saves the cursor and stops. */
  async finish(): Promise<void> {
    await this.flush();
    await this.flush(); // the first may have been an older save already in flight
    this.abort();
  }

  /** New events may exist, a member gained capacity, or deliveries became ready. */
  pump(): void {
    if (this.#stopped || !this.#loaded) return;
    this.#dispatch();
    const { tail, metrics } = this.#g.deps;
    const head = tail.position(this.partition);
    if (!this.#reading && !this.#backoff && this.#unsent < READ_AHEAD && this.#readUpTo < head) void this.#read(head);
    metrics.consumerLag.set({ group: this.#g.name, partition: String(this.partition) }, Math.max(0, head - this.#cursor));
  }

  /** Reads the next events up to `head`, raising the delivered mark over them at the same time. */
  async #read(head: number): Promise<void> {
    const { eventLog, store, log } = this.#g.deps;
    this.#reading = true;
    let failed = false;
    try {
      const upTo = Math.min(head, this.#readUpTo + READ_AHEAD);
      const [events, marked] = await Promise.all([
        eventLog.read({ partition: this.partition, afterSeq: this.#readUpTo, limit: upTo - this.#readUpTo, toSeq: upTo }),
        upTo > this.#marked ? store.markDelivered(this.#g.name, this.partition, upTo + MARK_AHEAD, this.epoch) : Promise.resolve(true),
      ]);
      if (this.#stopped) return;
      if (!marked) {
        log.warn('group partition fenced', { group: this.#g.name, partition: this.partition, epoch: this.epoch });
        this.#g.fenced(this.partition, this);
        return;
      }
      if (upTo > this.#marked) this.#marked = upTo + MARK_AHEAD;
      if (events.length > 0 && (events[0] as LogEvent).seq > this.#readUpTo + 1) {
        // Not the next sequence: a trimmed prefix (skipped, the members are told) or a hole
        // (waited out like every reader, with a pause between reads rather than a spin).
        const { first, taggedTo } = await eventLog.retention(this.partition);
        if (this.#stopped) return;
        if (first > this.#readUpTo + 1) this.#skipTrimmed(this.#readUpTo, first, taggedTo);
        else failed = true;
      }
      for (const e of events) {
        if (e.seq !== this.#readUpTo + 1 || e.seq > upTo) break;
        this.#readUpTo = e.seq;
        if (!e.gap && this.#g.filter.matches(e.topic) && carries(e, this.#g.tags)) this.#enqueue(e);
        else this.#markDone(e.seq);
      }
    } catch (err) {
      failed = true;
      log.warn('group read failed', { group: this.#g.name, partition: this.partition, err: describeError(err) });
    } finally {
      this.#reading = false;
    }
    if (this.#stopped) return;
    if (!failed) return this.pump();
    this.#backoff = setTimeout(() => {
      this.#backoff = undefined;
      this.pump();
    }, READ_RETRY_MS);
  }

  #enqueue(e: LogEvent): void {
    this.#unsent++;
    const key = keyOf(e);
    if (!this.#keys.has(key)) {
      this.#keys.set(key, null);
      this.#ready.push(this.#delivery(e, false));
      return;
    }
    let later = this.#keys.get(key);
    if (!later) this.#keys.set(key, (later = new Fifo<LogEvent>()));
    later.push(e);
  }

  #delivery(event: LogEvent, replay: boolean): Delivery {
    let deliveries = 0;
    if (!replay) {
      deliveries = this.#prior.get(event.id) ?? (event.seq <= this.#inherited ? 1 : 0);
      this.#prior.delete(event.id);
    }
    return { event, partition: this, slot: undefined, deliveries, timer: undefined, replay, fresh: !replay };
  }

  #dispatch(): void {
    if (this.#ready.length === 0 || !this.#g.mayDispatch(this)) return;
    while (this.#ready.length > 0) {
      const slot = this.#g.takeSlot();
      if (!slot) {
        this.#g.starve(this);
        return;
      }
      this.#send(this.#ready.shift() as Delivery, slot);
    }
  }

  /** `slot` already counts this delivery in its in-flight total. */
  #send(d: Delivery, slot: Slot): void {
    d.deliveries++;
    d.slot = slot;
    if (d.fresh) {
      d.fresh = false;
      this.#unsent--;
    }
    this.#inflight.add(d);
    this.#g.track(d, slot);
    if (d.deliveries > 1) {
      this.#g.deps.metrics.redeliveries.inc({ group: this.#g.name });
      // Redeliveries only (first deliveries are covered by the delivered mark): another owner continues from this count.
      if (!d.replay) {
        this.#recorded.add(d.event.seq);
        void this.#g.deps.store
          .recordDeliveries(this.#g.name, this.partition, d.event.id, d.event.seq, d.deliveries)
          .catch(this.#warn('recording a delivery count failed'));
      }
    }
    d.timer = setTimeout(() => this.#retry(d, undefined, 'ack timeout'), this.#g.deps.settings.ackTimeoutMs);
    if (slot.member.send(d.event, d.deliveries, d.replay)) return;
    // The member can no longer receive (its connection closed): it leaves the group now, so
    // this delivery (not counted: it never went out) and any others it held go to other
    // members instead of back to it in a loop.
    this.#retry(d, 0, 'member gone', false);
    this.#g.remove(slot);
  }

  ack(d: Delivery): boolean {
    if (!this.#take(d)) return false;
    if (d.replay) void this.#g.deps.store.resolveReplay(this.#g.name, d.event.id, true).catch(this.#warn('replay resolve failed'));
    else this.#resolve(d.event);
    this.pump();
    return true;
  }

  /** Nack or timeout: back off and redeliver, or dead-letter after maxDeliveries. */
  nack(d: Delivery, delayMs: number | undefined, reason: string): boolean {
    return this.#retry(d, delayMs, reason);
  }

  /** The member left holding `d`: it goes to someone else at once, as a redelivery (it may have been processed). */
  giveBack(d: Delivery): void {
    this.#retry(d, 0, 'member left');
  }

  #retry(d: Delivery, delayMs: number | undefined, reason: string, counts = true): boolean {
    if (!this.#take(d)) return false;
    const { settings, store, metrics, log } = this.#g.deps;
    if (counts && d.deliveries >= settings.maxDeliveries) {
      metrics.deadLetters.inc({ group: this.#g.name });
      void store.deadLetter(this.#g.name, d.event, d.deliveries, reason).then(
        () => {
          if (d.replay || this.#stopped) return;
          this.#resolve(d.event);
          this.pump();
        },
        (err: unknown) => log.error('dead letter failed', { group: this.#g.name, id: d.event.id, err: describeError(err) }),
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
      Math.min(wait, MAX_REDELIVERY_DELAY_MS),
    );
    this.#waiting.add(d);
    return true;
  }

  /** Ends `d`'s time in flight; false when it was not in flight (already settled). */
  #take(d: Delivery): boolean {
    if (!this.#inflight.delete(d)) return false;
    clearTimeout(d.timer);
    d.timer = undefined;
    const slot = d.slot;
    d.slot = undefined;
    if (slot) this.#g.untrack(d, slot);
    return true;
  }

  /** The event is done (acked or dead): its key's next event may go, and the cursor may advance. */
  #resolve(e: LogEvent): void {
    const key = keyOf(e);
    const next = this.#keys.get(key)?.shift();
    if (next) this.#ready.push(this.#delivery(next, false));
    else this.#keys.delete(key);
    this.#markDone(e.seq);
  }

  /**
   * Skips the trimmed sequences after `readUpTo` up to `first - 1`: they count as settled
   * once the cursor reaches them (deliveries read before them may still be in flight), and
   * the group's members here are told where the partition starts now, unless the group has
   * tags and no event with tags was trimmed after `readUpTo` (`taggedTo`): then it lost only
   * events it would have passed over.
   */
  #skipTrimmed(readUpTo: number, first: number, taggedTo: number): void {
    this.#trimmed = { from: readUpTo + 1, to: first - 1 };
    this.#readUpTo = first - 1;
    if (this.#g.tags.length > 0 && taggedTo <= readUpTo) {
      this.#g.deps.log.debug('consumer group passed over trimmed events without tags', {
        group: this.#g.name,
        partition: this.partition,
        from: readUpTo + 1,
        firstSeq: first,
      });
      this.#markDone(this.#cursor);
      return;
    }
    this.#g.deps.metrics.trimmedSkips?.inc({ group: this.#g.name });
    this.#g.deps.log.warn('consumer group skipped events retention trimmed before they were read', {
      group: this.#g.name,
      partition: this.partition,
      from: readUpTo + 1,
      firstSeq: first,
    });
    this.#g.trimmed(this.partition, first);
    this.#markDone(this.#cursor);
  }

  #markDone(seq: number): void {
    if (seq > this.#cursor) this.#done.add(seq);
    for (;;) {
      const t = this.#trimmed;
      if (t && this.#cursor + 1 >= t.from && this.#cursor < t.to) {
        this.#cursor = t.to;
        this.#trimmed = undefined;
        continue;
      }
      if (!this.#done.has(this.#cursor + 1)) break;
      this.#done.delete(this.#cursor + 1);
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
      if (ok) {
        this.#savedCursor = Math.max(this.#savedCursor, seq);
        this.#forgetSettled(seq);
      } else {
        this.#g.deps.log.warn('group cursor fenced', { group: this.#g.name, partition: this.partition, epoch: this.epoch });
        this.#g.fenced(this.partition, this);
      }
    } catch (err) {
      this.#g.deps.log.warn('cursor save failed', { group: this.#g.name, partition: this.partition, err: describeError(err) });
    }
  }

  /** Drops recorded counts the saved cursor has passed. */
  #forgetSettled(cursor: number): void {
    let any = false;
    for (const seq of this.#recorded) {
      if (seq > cursor) continue;
      this.#recorded.delete(seq);
      any = true;
    }
    if (any)
      void this.#g.deps.store
        .forgetDeliveries(this.#g.name, this.partition, cursor)
        .catch(this.#warn('forgetting settled delivery counts failed'));
  }

  async #pullReplays(): Promise<void> {
    if (this.#stopped) return;
    try {
      const replays = await this.#g.deps.store.takeReplays(this.#g.name, this.partition, 100);
      if (this.#stopped) return;
      for (const r of replays) this.#ready.push(this.#delivery(r.event, true));
      if (replays.length > 0) this.pump();
    } catch (err) {
      this.#g.deps.log.warn('replay poll failed', { group: this.#g.name, err: describeError(err) });
    }
  }

  #warn(msg: string): (err: unknown) => void {
    return (err) => this.#g.deps.log.warn(msg, { group: this.#g.name, partition: this.partition, err: describeError(err) });
  }
}

/** Whether `e` carries every one of `tags` (a handful of strings: linear is fine). */
function carries(e: LogEvent, tags: readonly string[]): boolean {
  if (tags.length === 0) return true;
  const have = e.tags;
  return have !== undefined && tags.every((t) => have.includes(t));
}
