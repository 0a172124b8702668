import { normalTags } from '../groupstore/index.js';
import type { StartFrom } from '../protocol/index.js';
import type { TopicPattern } from '../topic/index.js';
import { GroupError } from './errors.js';
import { GroupRuntime } from './runtime.js';
import type { Slot } from './slot.js';
import type { GroupDeps, GroupMember, GroupMembership } from './types.js';

/**
 * Consumer groups on this gateway. A group is present while it has local
 * members; its partitions are shared with the other gateways through leases
 * (lease group {@link groupLeaseGroup}), so each event goes to one member of the group.
 */
export class GroupManager {
  readonly #deps: GroupDeps;
  readonly #groups = new Map<string, GroupRuntime>();
  readonly #starting = new Map<string, Promise<GroupRuntime>>();
  readonly #stopping = new Set<Promise<void>>();

  constructor(deps: GroupDeps) {
    this.#deps = deps;
  }

  /**
   * Adds `member` to group `name`. The first join anywhere creates the group,
   * starting each partition at `from` (`now`: the current end of the log;
   * `earliest`: its beginning; `{partition: seq}`: after `seq`, and at the end
   * for partitions not listed). An existing group resumes from its cursors.
   * The member takes deliveries once its membership is activated.
   */
  async join(
    name: string,
    filter: TopicPattern,
    member: GroupMember,
    from: StartFrom = 'now',
    tags: readonly string[] = [],
  ): Promise<GroupMembership> {
    // Compared as stored: sorted, without repeats (a member may list them in any order).
    const wanted = normalTags(tags);
    let runtime = this.#groups.get(name);
    if (!runtime) {
      let starting = this.#starting.get(name);
      if (!starting) {
        starting = (async () => {
          const record = await this.#deps.store.register(name, filter.source, this.#startPositions(from), wanted);
          const stored = [...(record.tags ?? [])];
          if (record.filter !== filter.source || !sameTags(stored, wanted))
            throw mismatch(name, describe(record.filter, stored), describe(filter.source, wanted));
          const r = new GroupRuntime(name, filter, this.#deps, stored);
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
    }
    if (runtime.filter.source !== filter.source || !sameTags(runtime.tags, wanted))
      throw mismatch(name, describe(runtime.filter.source, runtime.tags), describe(filter.source, wanted));
    const r = runtime;
    const slot = r.add(member);
    let left: Promise<void> | undefined;
    return {
      activate: () => r.activate(slot),
      ack: (eventId) => r.ack(slot, eventId),
      nack: (eventId, delayMs) => r.nack(slot, eventId, delayMs),
      leave: () => (left ??= this.#leave(name, r, slot)),
    };
  }

  #startPositions(from: StartFrom): Map<number, number> {
    const { partitions } = this.#deps.settings;
    const start = new Map<number, number>();
    if (from === 'earliest') return start;
    for (let p = 0; p < partitions; p++) {
      const after = typeof from === 'object' ? from[String(p)] : undefined;
      start.set(p, after ?? this.#deps.tail.position(p));
    }
    return start;
  }

  async #leave(name: string, runtime: GroupRuntime, slot: Slot): Promise<void> {
    runtime.remove(slot);
    if (runtime.memberCount === 0 && this.#groups.get(name) === runtime) {
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

  /** Flushes cursors and releases every group lease. */
  async stop(): Promise<void> {
    // A start that failed was logged where it failed; stopping only waits for it to settle.
    await Promise.all([...this.#starting.values()].map((p) => p.catch(() => undefined)));
    const all = [...this.#groups.values()];
    this.#groups.clear();
    await Promise.all(
      all.map(async (r) => {
        await r.flush();
        await r.stop();
      }),
    );
    // Likewise for stops already under way: their failures were logged by their owners.
    await Promise.all([...this.#stopping].map((p) => p.catch(() => undefined)));
  }
}

function sameTags(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((t, i) => t === b[i]);
}

function describe(filter: string, tags: readonly string[]): string {
  return tags.length === 0 ? filter : `${filter} with tags ${tags.join(', ')}`;
}

function mismatch(name: string, has: string, wanted: string): GroupError {
  return new GroupError('GROUP_MISMATCH', `group ${name} consumes ${has}, not ${wanted}`);
}
