/**
 * Labelled metrics as Prometheus sees them: counters exported at 0 for their known
 * label values before anything happens (a series that appears already at 1 has no
 * `increase()`, so a first dead letter or auth failure would never alert), and a
 * group partition's lag gauge gone from a gateway once it no longer consumes that
 * partition (a frozen last value would hide the lag).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { AUTH_ERROR_CODES } from '../internal/auth/index.js';
import { createDrainerMetrics } from '../internal/drainer/index.js';
import { createGatewayMetrics } from '../internal/gateway/index.js';
import { GroupManager, type GroupMember, type GroupMembership } from '../internal/groups/index.js';
import { MemoryGroupStore } from '../internal/groupstore/index.js';
import { MemoryLeaseStore } from '../internal/lease/index.js';
import { createLogger } from '../internal/log/index.js';
import { CLIENT_OPS, CloseCode } from '../internal/protocol/index.js';
import { createRegistry, type Registry } from '../internal/telemetry/index.js';
import { TopicPattern } from '../internal/topic/index.js';
import { eventually } from './harness/process.js';
import { MemoryLog } from './harness/memory-ports.js';

/** The label sets and values of metric `name` in `registry`. */
async function series(registry: Registry, name: string): Promise<Array<{ labels: Record<string, string | number>; value: number }>> {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`${name} is not registered`);
  return (await metric.get()).values.map((v) => ({ labels: v.labels as Record<string, string | number>, value: v.value }));
}

/** The values of label `label` among the series of `name` at 0. */
async function zeroes(registry: Registry, name: string, label: string): Promise<string[]> {
  return (await series(registry, name)).filter((s) => s.value === 0).map((s) => String(s.labels[label]));
}

describe('counters exported at 0 for their known label values', () => {
  it('gateway: auth failures, ACL denials, frames in and out, closes', async () => {
    const registry = createRegistry('gateway');
    createGatewayMetrics(registry);
    expect((await zeroes(registry, 'gateway_auth_failures_total', 'reason')).sort()).toEqual(
      [...AUTH_ERROR_CODES, 'SUBJECT_CHANGED'].sort(),
    );
    expect((await zeroes(registry, 'gateway_acl_denials_total', 'op')).sort()).toEqual(['PUBLISH', 'SUBSCRIBE']);
    expect((await zeroes(registry, 'gateway_frames_in_total', 'op')).sort()).toEqual([...CLIENT_OPS, 'invalid'].sort());
    expect((await zeroes(registry, 'gateway_frames_out_total', 'op')).sort()).toEqual(['ERR', 'EVENT', 'OK']);
    const codes = await zeroes(registry, 'gateway_closes_total', 'code');
    for (const code of [
      CloseCode.SHUTTING_DOWN,
      CloseCode.AUTH_FAILED,
      CloseCode.TOKEN_EXPIRED,
      CloseCode.SLOW_CONSUMER,
      CloseCode.RATE_LIMITED,
    ])
      expect(codes).toContain(String(code));
    // The exposition Prometheus scrapes carries them.
    expect(await registry.metrics()).toMatch(/^gateway_auth_failures_total\{reason="TOKEN_EXPIRED",binary="gateway"\} 0$/m);
  });

  it('drainer: batch errors of both kinds', async () => {
    const registry = createRegistry('drainer');
    createDrainerMetrics(registry);
    expect((await zeroes(registry, 'outbox_batch_errors_total', 'kind')).sort()).toEqual(['permanent', 'transient']);
    // Unlabelled counters are exported at 0 by prom-client itself.
    expect(await series(registry, 'outbox_dead_lettered_total')).toEqual([{ labels: {}, value: 0 }]);
  });
});

describe("a group's metrics on a gateway", () => {
  const managers: GroupManager[] = [];
  afterEach(async () => {
    for (const m of managers.splice(0)) await m.stop();
  });

  const shared = (): { log: MemoryLog; store: MemoryGroupStore; leases: MemoryLeaseStore } => ({
    log: new MemoryLog(),
    store: new MemoryGroupStore(),
    leases: new MemoryLeaseStore(),
  });

  function gateway(instance: string, ports: ReturnType<typeof shared>): { manager: GroupManager; registry: Registry } {
    const registry = createRegistry('gateway');
    const manager = new GroupManager({
      eventLog: ports.log,
      tail: ports.log,
      leases: ports.leases,
      store: ports.store,
      log: createLogger({ level: 'error' }),
      metrics: createGatewayMetrics(registry),
      settings: {
        partitions: 4,
        instance,
        ackTimeoutMs: 10_000,
        maxDeliveries: 1,
        redeliveryBaseMs: 10,
        leaseTtlMs: 1_000,
        leaseRenewMs: 100,
        cursorFlushMs: 20,
      },
    });
    managers.push(manager);
    return { manager, registry };
  }

  /** A member that nacks everything it gets (with maxDeliveries 1, a dead letter each). */
  async function nacker(manager: GroupManager): Promise<{ membership: GroupMembership; got: string[] }> {
    const got: string[] = [];
    const joined: { membership?: GroupMembership } = {};
    const m: GroupMember = {
      id: `m${Math.random()}`,
      maxInFlight: 10,
      send: (event) => {
        got.push(event.id);
        queueMicrotask(() => joined.membership?.nack(event.id, 0));
        return true;
      },
    };
    const membership = await manager.join('billing', TopicPattern.compile('jobs.*'), m, 'earliest');
    joined.membership = membership;
    membership.activate();
    return { membership, got };
  }

  /** Partitions with a lag series for group billing. */
  async function lagPartitions(registry: Registry): Promise<string[]> {
    return (await series(registry, 'gateway_consumer_lag_events'))
      .filter((s) => s.labels['group'] === 'billing')
      .map((s) => String(s.labels['partition']))
      .sort();
  }

  it('exports dead letters and redeliveries at 0 from the start, counts the first dead letter, and drops the lag when the members leave', async () => {
    const ports = shared();
    const { manager, registry } = gateway('gw-a', ports);
    const { membership, got } = await nacker(manager);
    const billing = async (name: string): Promise<number | undefined> =>
      (await series(registry, name)).find((s) => s.labels['group'] === 'billing')?.value;
    expect(await billing('gateway_dead_letters_total')).toBe(0);
    expect(await billing('gateway_redeliveries_total')).toBe(0);
    await eventually(async () => (await lagPartitions(registry)).length === 4, 5_000, 'a lag series per held partition');

    ports.log.publish([{ partition: 2, key: 'k', topic: 'jobs.run', payload: 1 }]);
    await eventually(async () => (await billing('gateway_dead_letters_total')) === 1, 5_000, 'the dead letter to be counted');
    expect(got).toHaveLength(1);

    await membership.leave();
    expect(await lagPartitions(registry)).toEqual([]);
    // The counters stay (counters are not withdrawn): their history is still the group's.
    expect(await billing('gateway_dead_letters_total')).toBe(1);
  });

  it('reports each partition of the group on the one gateway that holds it, after a rebalance and after a gateway leaves', async () => {
    const ports = shared();
    const a = gateway('gw-a', ports);
    await nacker(a.manager);
    await eventually(async () => (await lagPartitions(a.registry)).length === 4, 5_000, 'gateway a to report every partition');

    const b = gateway('gw-b', ports);
    const onB = await nacker(b.manager);
    // The partitions move to b in turn: a stops reporting each one it released.
    await eventually(
      async () => {
        const [pa, pb] = [await lagPartitions(a.registry), await lagPartitions(b.registry)];
        return pb.length > 0 && [...pa, ...pb].sort().join() === '0,1,2,3' ? { pa, pb } : undefined;
      },
      10_000,
      'the partitions to be split between a and b, each reported once',
    );
    // While renewals go round, no partition is ever reported by both gateways.
    for (let i = 0; i < 10; i++) {
      const [pa, pb] = [await lagPartitions(a.registry), await lagPartitions(b.registry)];
      expect({ pa, pb, twice: pa.filter((p) => pb.includes(p)) }).toEqual({ pa, pb, twice: [] });
      await sleep(50);
    }

    await onB.membership.leave();
    expect(await lagPartitions(b.registry)).toEqual([]);
    await eventually(async () => (await lagPartitions(a.registry)).length === 4, 10_000, 'gateway a to report every partition again');
  });
});
