import { TopicPattern, topicProblem } from '../topic/index.js';
import { AuthError } from './errors.js';

/** What a grant allows. */
export type Action = 'publish' | 'subscribe';

interface Rule {
  readonly actions: ReadonlySet<Action>;
  readonly pattern: TopicPattern;
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

/** Most rules one token may carry: bounds the per-check work. */
export const MAX_RULES = 256;

/**
 * Topic permissions of one principal, compiled once per authentication.
 *
 * Sources: `scopes` (space-separated string or array of `publish:<pattern>` and
 * `subscribe:<pattern>`), and/or `policy: { allow: [{ action, topic }], deny: [...] }`
 * where `action` is publish, subscribe or `*`. Deny wins. A subscription filter is
 * allowed only when one allow rule covers every topic it can match and no deny
 * rule overlaps it.
 */
export class Policy {
  readonly #allow: readonly Rule[];
  readonly #deny: readonly Rule[];

  private constructor(allow: Rule[], deny: Rule[]) {
    this.#allow = allow;
    this.#deny = deny;
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
        allow.push({ actions: new Set([action]), pattern: compile(scope.slice(colon + 1)) });
      }
    }
    const policy = claims['policy'];
    if (policy !== undefined) {
      if (typeof policy !== 'object' || policy === null) throw new AuthError('CLAIMS_INVALID', 'policy must be an object');
      for (const [list, into] of [
        ['allow', allow],
        ['deny', deny],
      ] as const) {
        const rules = (policy as Record<string, unknown>)[list] ?? [];
        if (!Array.isArray(rules)) throw new AuthError('CLAIMS_INVALID', `policy.${list} must be an array`);
        for (const r of rules) {
          if (typeof r !== 'object' || r === null) throw new AuthError('CLAIMS_INVALID', `policy.${list} entries must be objects`);
          const rule = r as Record<string, unknown>;
          into.push({ actions: new Set(parseAction(rule['action'])), pattern: compile(rule['topic']) });
        }
      }
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

  /** May this principal subscribe with `filter`? Every topic it can match must be allowed. */
  canSubscribe(filter: TopicPattern): boolean {
    if (this.#deny.some((r) => r.actions.has('subscribe') && r.pattern.overlaps(filter))) return false;
    return this.#allow.some((r) => r.actions.has('subscribe') && filter.within(r.pattern));
  }
}
