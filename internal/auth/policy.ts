import { GROUP_NAME } from '../protocol/index.js';
import { TopicPattern, topicProblem } from '../topic/index.js';
import { AuthError } from './errors.js';

/** What a grant allows. */
export type Action = 'publish' | 'subscribe';

/** The consumer groups a rule names: any (`*`) or a set of names. */
interface Groups {
  readonly any: boolean;
  readonly names: ReadonlySet<string>;
}

interface Rule {
  readonly actions: ReadonlySet<Action>;
  readonly pattern: TopicPattern;
  /** Undefined when the rule names no groups. */
  readonly groups: Groups | undefined;
}

const ACTIONS: readonly Action[] = ['publish', 'subscribe'];

function parseAction(value: unknown): Action[] {
  if (value === '*') return [...ACTIONS];
  if (value === 'publish' || value === 'subscribe') return [value];
  throw new AuthError('CLAIMS_INVALID', `unknown action ${JSON.stringify(value)} (publish, subscribe or *)`);
}

function compile(topic: unknown): TopicPattern {
  try {
    return TopicPattern.compile(topic);
  } catch (err) {
    throw new AuthError('CLAIMS_INVALID', `bad topic pattern in token: ${(err as Error).message}`, { cause: err });
  }
}

function parseGroups(value: unknown, actions: readonly Action[], where: string): Groups | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) throw new AuthError('CLAIMS_INVALID', `${where}.groups must be an array of group names or "*"`);
  // Groups scope consumer-group subscriptions; on a publish-only rule they would mean nothing, so they are a mistake.
  if (!actions.includes('subscribe')) throw new AuthError('CLAIMS_INVALID', `${where}.groups applies to subscribe rules only`);
  const names = new Set<string>();
  let any = false;
  for (const g of value) {
    if (g === '*') any = true;
    else if (typeof g === 'string' && GROUP_NAME.test(g)) names.add(g);
    else throw new AuthError('CLAIMS_INVALID', `${where}.groups: ${JSON.stringify(g)} is not a group name or "*"`);
  }
  return { any, names };
}

function covers(groups: Groups, group: string): boolean {
  return groups.any || groups.names.has(group);
}

/** Most subscription decisions a policy remembers. */
const DECISION_CACHE_SIZE = 256;

/** Most rules one token may carry (after expanding topic lists): bounds the per-check work. */
export const MAX_RULES = 256;

/**
 * Topic and group permissions of one principal, compiled once per authentication.
 *
 * Sources, combined:
 * - `scopes`: a space-separated string or an array of `publish:<pattern>` and
 *   `subscribe:<pattern>`;
 * - `policy: { allow: [{ action, topic, groups? }], deny: [...] }`;
 * - `policy: { rules: [{ effect: 'allow'|'deny', action, topics: [...], groups? }] }`;
 * where `action` is publish, subscribe or `*`.
 *
 * Topics: deny wins; a subscription filter is allowed only when one allow rule
 * covers every topic it can match and no deny rule overlaps it.
 *
 * Groups (`groups`: names or `*`, subscribe rules only) decide who may join a
 * consumer group, and so settle its deliveries. While no rule names groups, a
 * subscription allowed by topic may use any group. Once any rule names groups,
 * a group subscription needs an allow rule that covers the filter and names the
 * group (or `*`): groups not granted are denied. A deny rule that names groups
 * refuses only those groups; one without groups refuses every subscription it
 * overlaps. Live subscriptions (no group) are decided by topic alone.
 */
export class Policy {
  readonly #allow: readonly Rule[];
  readonly #deny: readonly Rule[];
  /** Some rule names groups: groups are then granted explicitly. */
  readonly #groupsScoped: boolean;
  /**
   * Subscription decisions already made, by group and filter: a client repeating a
   * SUBSCRIBE/UNSUBSCRIBE pair, or a re-AUTH re-checking its subscriptions, costs a
   * lookup. Bounded: emptied when it reaches {@link DECISION_CACHE_SIZE}.
   */
  readonly #decided = new Map<string, boolean>();

  private constructor(allow: Rule[], deny: Rule[]) {
    this.#allow = allow;
    this.#deny = deny;
    this.#groupsScoped = [...allow, ...deny].some((r) => r.groups !== undefined);
  }

  /** Builds a policy from JWT claims; throws `CLAIMS_INVALID` on anything malformed. */
  static fromClaims(claims: Readonly<Record<string, unknown>>): Policy {
    const allow: Rule[] = [];
    const deny: Rule[] = [];
    const scopes = claims['scopes'] ?? claims['scope'];
    if (scopes !== undefined) {
      const list = typeof scopes === 'string' ? scopes.split(' ').filter(Boolean) : scopes;
      if (!Array.isArray(list)) throw new AuthError('CLAIMS_INVALID', 'scopes must be a string or an array of strings');
      for (const scope of list) {
        if (typeof scope !== 'string') throw new AuthError('CLAIMS_INVALID', 'scopes must be strings');
        const colon = scope.indexOf(':');
        // Scopes for other resources share the claim: only publish:/subscribe: concern us.
        if (colon < 0) continue;
        const action = scope.slice(0, colon);
        if (action !== 'publish' && action !== 'subscribe') continue;
        allow.push({ actions: new Set([action]), pattern: compile(scope.slice(colon + 1)), groups: undefined });
      }
    }
    const policy = claims['policy'];
    if (policy !== undefined) {
      if (typeof policy !== 'object' || policy === null || Array.isArray(policy))
        throw new AuthError('CLAIMS_INVALID', 'policy must be an object');
      const p = policy as Record<string, unknown>;
      for (const [list, into] of [
        ['allow', allow],
        ['deny', deny],
      ] as const) {
        const rules = p[list] ?? [];
        if (!Array.isArray(rules)) throw new AuthError('CLAIMS_INVALID', `policy.${list} must be an array`);
        rules.forEach((r: unknown, i) => {
          if (typeof r !== 'object' || r === null) throw new AuthError('CLAIMS_INVALID', `policy.${list} entries must be objects`);
          const rule = r as Record<string, unknown>;
          const actions = parseAction(rule['action']);
          into.push({
            actions: new Set(actions),
            pattern: compile(rule['topic']),
            groups: parseGroups(rule['groups'], actions, `policy.${list}[${i}]`),
          });
          if (allow.length + deny.length > MAX_RULES) throw new AuthError('CLAIMS_INVALID', `more than ${MAX_RULES} rules`);
        });
      }
      const rules = p['rules'] ?? [];
      if (!Array.isArray(rules)) throw new AuthError('CLAIMS_INVALID', 'policy.rules must be an array');
      rules.forEach((r: unknown, i) => {
        const where = `policy.rules[${i}]`;
        if (typeof r !== 'object' || r === null) throw new AuthError('CLAIMS_INVALID', `${where} must be an object`);
        const rule = r as Record<string, unknown>;
        const effect = rule['effect'];
        if (effect !== 'allow' && effect !== 'deny') throw new AuthError('CLAIMS_INVALID', `${where}.effect must be allow or deny`);
        const actions = parseAction(rule['action']);
        const topics = rule['topics'];
        if (!Array.isArray(topics) || topics.length === 0)
          throw new AuthError('CLAIMS_INVALID', `${where}.topics must be a non-empty array of topic patterns`);
        const groups = parseGroups(rule['groups'], actions, where);
        for (const topic of topics) {
          (effect === 'allow' ? allow : deny).push({ actions: new Set(actions), pattern: compile(topic), groups });
          if (allow.length + deny.length > MAX_RULES) throw new AuthError('CLAIMS_INVALID', `more than ${MAX_RULES} rules`);
        }
      });
    }
    if (allow.length + deny.length > MAX_RULES) throw new AuthError('CLAIMS_INVALID', `more than ${MAX_RULES} rules`);
    return new Policy(allow, deny);
  }

  /** May this principal publish to `topic` (a concrete topic, never a pattern)? */
  canPublish(topic: string): boolean {
    if (topicProblem(topic) !== undefined) return false;
    if (this.#deny.some((r) => r.actions.has('publish') && r.pattern.matches(topic))) return false;
    return this.#allow.some((r) => r.actions.has('publish') && r.pattern.matches(topic));
  }

  /**
   * May this principal subscribe with `filter`, live or (with `group`) as a
   * member of that consumer group? Every topic the filter can match must be allowed.
   */
  canSubscribe(filter: TopicPattern, group?: string): boolean {
    const key = `${group ?? ''}\u0000${filter.source}`;
    let decision = this.#decided.get(key);
    if (decision === undefined) {
      decision = this.#decide(filter, group);
      if (this.#decided.size >= DECISION_CACHE_SIZE) this.#decided.clear();
      this.#decided.set(key, decision);
    }
    return decision;
  }

  #decide(filter: TopicPattern, group: string | undefined): boolean {
    const denied = this.#deny.some(
      (r) =>
        r.actions.has('subscribe') &&
        (r.groups === undefined || (group !== undefined && covers(r.groups, group))) &&
        r.pattern.overlaps(filter),
    );
    if (denied) return false;
    return this.#allow.some((r) => {
      if (!r.actions.has('subscribe') || !filter.within(r.pattern)) return false;
      if (group === undefined || !this.#groupsScoped) return true;
      return r.groups !== undefined && covers(r.groups, group);
    });
  }
}
