import { createHash } from 'node:crypto';
import { ApiException, CoordinationV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Lease, LeaseStore, Member } from './types.js';

/**
 * Labels and annotations this adapter writes on its Lease objects. Label values
 * are at most 63 characters of [a-z0-9A-Z._-] and names are lowercase, so a group
 * or member is identified by a digest of its exact text (names that fold to the
 * same lowercase text stay apart) and only shown, shortened, for people.
 */
const LABEL_PREFIX = 'outbox-hub.io/prefix';
const LABEL_GROUP = 'outbox-hub.io/group';
const LABEL_PARTITION = 'outbox-hub.io/partition';
const LABEL_MEMBER_OF = 'outbox-hub.io/member-of';
const ANN_GROUP = 'outbox-hub.io/group-name';
/** Millisecond precision for expiry (spec.leaseDurationSeconds is whole seconds). */
const ANN_EXPIRES = 'outbox-hub.io/expires-at-ms';

/** Options for {@link KubernetesLeaseStore}. */
export interface KubernetesLeaseOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** Prefix of Lease object names, e.g. the Helm release. */
  prefix: string;
}

/** `s` folded into DNS-label characters, at most `max` long, starting and ending alphanumeric (may be empty). */
function dns(s: string, max: number): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .slice(0, max)
    .replace(/^-+|-+$/g, '');
}

/** 80 bits of SHA-256 of the exact text: a label value and name part that cannot collide in practice. */
function digest(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 20);
}

/** `readable-digest`, or just the digest when nothing readable is left. */
function part(s: string, max: number): string {
  const readable = dns(s, max);
  return readable ? `${readable}-${digest(s)}` : digest(s);
}

function isStatus(err: unknown, ...codes: number[]): boolean {
  return err instanceof ApiException && codes.includes(err.code);
}

/**
 * MicroTime as the API server parses it (RFC 3339 with exactly six fractional
 * digits); the client would send a Date with three, which the server refuses.
 */
function microTime(d: Date): Date {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z') as unknown as Date;
}

function expiresAt(l: V1Lease): number {
  return Number(l.metadata?.annotations?.[ANN_EXPIRES] ?? 0);
}

/**
 * {@link LeaseStore} on Kubernetes `coordination.k8s.io/v1` Leases. Every
 * transition is a compare-and-swap on `metadata.resourceVersion` (a stale
 * writer gets 409 Conflict); the epoch is `spec.leaseTransitions`, bumped on
 * every change of holder. Members are Leases too (one per member, labelled
 * with its group). Every Lease carries the prefix as a label and lists select
 * on it, so several releases can share a namespace. Needs get, list, create,
 * update and delete on leases in its namespace (the Helm chart's Role).
 */
export class KubernetesLeaseStore implements LeaseStore {
  readonly #api: CoordinationV1Api;
  readonly #ns: string;
  readonly #prefix: string;

  constructor(options: KubernetesLeaseOptions) {
    this.#api = options.kubeConfig.makeApiClient(CoordinationV1Api);
    this.#ns = options.namespace;
    // LEASE_PREFIX is at most 40 characters of [a-z0-9-], so it also fits a label value.
    this.#prefix = dns(options.prefix, 40) || 'outbox-hub';
  }

  // At most 40 + 1 + 61 + 1 + 10 characters: well inside a Lease name's 253.
  #name(group: string, partition: number): string {
    return `${this.#prefix}-${part(group, 40)}-${partition}`;
  }

  // At most 40 + 3 + 61 + 1 + 81 characters.
  #memberName(group: string, member: string): string {
    return `${this.#prefix}-m-${part(group, 40)}-${part(member, 60)}`;
  }

  #selector(label: string, group: string): string {
    return `${LABEL_PREFIX}=${this.#prefix},${label}=${digest(group)}`;
  }

  #toLease(l: V1Lease, group: string, partition: number): Lease {
    return Object.freeze({
      group,
      partition,
      holder: l.spec?.holderIdentity ?? '',
      epoch: l.spec?.leaseTransitions ?? 0,
      expiresAt: new Date(expiresAt(l)),
    });
  }

  async #read(name: string): Promise<V1Lease | null> {
    try {
      return await this.#api.readNamespacedLease({ name, namespace: this.#ns });
    } catch (err) {
      if (isStatus(err, 404)) return null;
      throw err;
    }
  }

  #body(
    name: string,
    group: string,
    labels: Record<string, string>,
    holder: string,
    epoch: number,
    ttlMs: number,
    resourceVersion?: string,
  ): V1Lease {
    const now = new Date();
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        name,
        namespace: this.#ns,
        labels: { ...labels, [LABEL_PREFIX]: this.#prefix },
        annotations: { [ANN_EXPIRES]: String(now.getTime() + ttlMs), [ANN_GROUP]: group },
        ...(resourceVersion ? { resourceVersion } : {}),
      },
      spec: {
        holderIdentity: holder,
        leaseDurationSeconds: Math.max(1, Math.ceil(ttlMs / 1000)),
        leaseTransitions: epoch,
        renewTime: microTime(now),
        acquireTime: microTime(now),
      },
    };
  }

  /** Create or compare-and-swap replace; false on a lost race (409). */
  async #write(body: V1Lease, exists: boolean): Promise<V1Lease | null> {
    const name = body.metadata?.name as string;
    try {
      return exists
        ? await this.#api.replaceNamespacedLease({ name, namespace: this.#ns, body })
        : await this.#api.createNamespacedLease({ namespace: this.#ns, body });
    } catch (err) {
      if (isStatus(err, 409)) return null;
      throw err;
    }
  }

  async acquire(group: string, partition: number, holder: string, ttlMs: number): Promise<Lease | null> {
    const name = this.#name(group, partition);
    const current = await this.#read(name);
    if (current && current.spec?.holderIdentity && expiresAt(current) > Date.now()) return null;
    const labels = { [LABEL_GROUP]: digest(group), [LABEL_PARTITION]: String(partition) };
    const body = this.#body(
      name,
      group,
      labels,
      holder,
      (current?.spec?.leaseTransitions ?? 0) + 1,
      ttlMs,
      current?.metadata?.resourceVersion,
    );
    const written = await this.#write(body, current !== null);
    return written ? this.#toLease(written, group, partition) : null;
  }

  async renew(lease: Lease, ttlMs: number): Promise<Lease | null> {
    const name = this.#name(lease.group, lease.partition);
    const current = await this.#read(name);
    if (!current || current.spec?.holderIdentity !== lease.holder || current.spec?.leaseTransitions !== lease.epoch) return null;
    const body = this.#body(
      name,
      lease.group,
      current.metadata?.labels ?? {},
      lease.holder,
      lease.epoch,
      ttlMs,
      current.metadata?.resourceVersion,
    );
    if (body.spec && current.spec?.acquireTime) body.spec.acquireTime = current.spec.acquireTime;
    const written = await this.#write(body, true);
    return written ? this.#toLease(written, lease.group, lease.partition) : null;
  }

  async release(lease: Lease): Promise<void> {
    const name = this.#name(lease.group, lease.partition);
    const current = await this.#read(name);
    if (!current || current.spec?.holderIdentity !== lease.holder || current.spec?.leaseTransitions !== lease.epoch) return;
    const body = this.#body(name, lease.group, current.metadata?.labels ?? {}, '', lease.epoch, 0, current.metadata?.resourceVersion);
    if (body.metadata?.annotations) body.metadata.annotations[ANN_EXPIRES] = '0';
    await this.#write(body, true);
  }

  async list(group: string): Promise<Lease[]> {
    const res = await this.#api.listNamespacedLease({ namespace: this.#ns, labelSelector: this.#selector(LABEL_GROUP, group) });
    return res.items
      .map((l) => this.#toLease(l, group, Number(l.metadata?.labels?.[LABEL_PARTITION] ?? -1)))
      .filter((l) => l.partition >= 0)
      .sort((a, b) => a.partition - b.partition);
  }

  async heartbeat(group: string, member: string, ttlMs: number): Promise<void> {
    const name = this.#memberName(group, member);
    for (let attempt = 0; attempt < 3; attempt++) {
      const current = await this.#read(name);
      const body = this.#body(name, group, { [LABEL_MEMBER_OF]: digest(group) }, member, 0, ttlMs, current?.metadata?.resourceVersion);
      if (await this.#write(body, current !== null)) return;
    }
  }

  async members(group: string): Promise<Member[]> {
    const now = Date.now();
    return this.#memberLeases(group, (at) => at > now);
  }

  async lapsed(group: string, withinMs: number): Promise<Member[]> {
    const now = Date.now();
    return this.#memberLeases(group, (at) => at <= now && at > now - withinMs);
  }

  async #memberLeases(group: string, keep: (expiresAt: number) => boolean): Promise<Member[]> {
    const res = await this.#api.listNamespacedLease({ namespace: this.#ns, labelSelector: this.#selector(LABEL_MEMBER_OF, group) });
    return res.items
      .filter((l) => keep(expiresAt(l)))
      .map((l) => Object.freeze({ group, member: l.spec?.holderIdentity ?? '', expiresAt: new Date(expiresAt(l)) }))
      .sort((a, b) => a.member.localeCompare(b.member));
  }

  async leave(group: string, member: string): Promise<void> {
    try {
      await this.#api.deleteNamespacedLease({ name: this.#memberName(group, member), namespace: this.#ns });
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
    }
  }
}
