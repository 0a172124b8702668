import type { LogEvent } from '../eventlog/index.js';
import { TopicIndex, type TopicPattern } from '../topic/index.js';
import type { WireEvent } from '../protocol/index.js';
import type { LogTail } from './tail.js';

/** A live (group-less) subscription as the hub sees it. */
export interface LiveSubscription {
  readonly pattern: TopicPattern;
  offer(event: LogEvent, json: string): void;
}

/** The wire form of an event. */
export function toWire(e: LogEvent): WireEvent {
  return {
    id: e.id,
    topic: e.topic,
    key: e.key,
    partition: e.partition,
    seq: e.seq,
    payload: e.payload,
    headers: e.headers,
    createdAt: e.createdAt.toISOString(),
    publishedAt: e.publishedAt.toISOString(),
  };
}

/**
 * In-memory fan-out of the tail to live subscriptions. Matching goes through a
 * {@link TopicIndex} and each event is serialised once, however many
 * subscribers receive it.
 */
export class LiveHub {
  readonly #index = new TopicIndex<LiveSubscription>();
  readonly #unlisten: () => void;

  constructor(tail: LogTail) {
    this.#unlisten = tail.listen((events) => {
      if (this.#index.size === 0) return;
      for (const e of events) {
        const subs = this.#index.match(e.topic);
        if (subs.size === 0) continue;
        const json = JSON.stringify(toWire(e));
        for (const s of subs) s.offer(e, json);
      }
    });
  }

  get size(): number {
    return this.#index.size;
  }

  add(sub: LiveSubscription): void {
    this.#index.add(sub.pattern, sub);
  }

  remove(sub: LiveSubscription): void {
    this.#index.remove(sub.pattern, sub);
  }

  close(): void {
    this.#unlisten();
  }
}
