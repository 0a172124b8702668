/** Commands answered by the ops API alone: status, lag, repair. */
import { problems, type GroupView, type Overview } from '../api.js';
import type { Context } from '../context.js';
import { CliError } from '../errors.js';
import { formatAge, formatRelative } from '../time.js';

/** `status`: the dashboard's headline, its cards and the backlog by partition. */
export async function status(ctx: Context, args: { all?: boolean; check?: boolean }): Promise<void> {
  const ops = ctx.ops();
  const o = await ops.get<Overview>('api/overview');
  const list = problems(o);
  if (ctx.json) ctx.out.document({ ...o, healthy: list.length === 0, problems: list });
  else {
    const { c } = ctx.out;
    ctx.out.line(list.length === 0 ? c.bold(c.green('✔ all healthy')) : c.bold(c.red(`✖ ${list.join('; ')}`)));
    ctx.out.line(c.dim(`ops ${ops.base} · sampled ${formatRelative(o.sampledAt)} · ${o.partitions} partitions`));
    ctx.out.line();
    const lag = o.groups.reduce((n, g) => n + g.lagEvents, 0);
    ctx.out.line(
      ctx.out.table(
        ['drainers', 'gateways', 'pending', 'oldest pending', 'dead', 'throughput/s', 'group lag', 'dead letters'].map((head) => ({
          head,
          align: 'right' as const,
        })),
        [
          [
            o.leases.drainers.length,
            o.leases.gateways.length,
            o.backlog.pending,
            formatAge(o.backlog.oldestPendingAgeSeconds),
            o.backlog.dead,
            o.throughputPerSecond,
            lag,
            o.groupDeadLetters,
          ],
        ],
      ),
    );
    ctx.out.line();
    const holders = new Map(o.leases.partitions.map((l) => [l.partition, l.holder]));
    const heads = new Map(o.partitionHeads.map((h) => [h.partition, h]));
    const rows = o.backlog.byPartition
      .filter((b) => args.all === true || b.pending > 0 || b.dead > 0)
      .map((b) => [
        b.partition,
        b.pending,
        formatAge(b.oldestPendingAgeSeconds),
        b.dead,
        heads.get(b.partition)?.head ?? '',
        heads.get(b.partition)?.ratePerSecond ?? '',
        holders.get(b.partition) ?? c.red('nobody'),
      ]);
    ctx.out.printTable(
      [
        { head: 'partition', align: 'right' },
        { head: 'pending', align: 'right' },
        { head: 'oldest', align: 'right' },
        { head: 'dead', align: 'right' },
        { head: 'head', align: 'right' },
        { head: 'rate/s', align: 'right' },
        { head: 'drainer' },
      ],
      rows,
      args.all === true ? 'no partitions' : 'backlog: nothing pending, nothing dead (--all lists every partition)',
    );
  }
  if (args.check === true && list.length > 0) throw new CliError('FAILED', `unhealthy: ${list.join('; ')}`);
}

/** `lag [group]`: per group and partition, events behind (by the group's filter) and how old the first of them is. */
export async function lag(ctx: Context, args: { group?: string; all?: boolean }): Promise<void> {
  const r = await ctx.ops().get<{ sampledAt: string; groups: GroupView[] }>('api/groups');
  let groups = r.groups;
  if (args.group !== undefined) {
    groups = groups.filter((g) => g.group === args.group);
    if (groups.length === 0)
      throw new CliError(
        'NOT_FOUND',
        `no consumer group ${args.group} in ops' last sample (${formatRelative(r.sampledAt)}); outbox-hub groups ls lists them`,
      );
  }
  if (ctx.json) return ctx.out.document({ sampledAt: r.sampledAt, groups });
  const { c } = ctx.out;
  const rows: Array<Array<string | number>> = [];
  for (const g of groups) {
    const parts = (g.partitions ?? []).filter((p) => args.all === true || p.lagEvents > 0);
    if (parts.length === 0) rows.push([g.group, c.dim('all'), '', '', c.green('0'), '0s']);
    for (const p of parts) {
      const behind = `${p.lagExact ? '' : '~'}${p.lagEvents}`;
      rows.push([g.group, p.partition, p.cursor, p.head, p.lagEvents > 0 ? c.yellow(behind) : behind, formatAge(p.lagSeconds)]);
    }
  }
  ctx.out.printTable(
    [
      { head: 'group' },
      { head: 'partition', align: 'right' },
      { head: 'cursor', align: 'right' },
      { head: 'head', align: 'right' },
      { head: 'lag (events)', align: 'right' },
      { head: 'lag (age)', align: 'right' },
    ],
    rows,
    'no consumer groups',
  );
  ctx.out.note(`as of ops' sample ${formatRelative(r.sampledAt)}; ~ marks an estimate`);
}

/** `repair <partition> --after <seq>`: fills the hole after `seq` with gap events (ops checks it is old enough). */
export async function repair(ctx: Context, args: { partition: number; after: number }): Promise<void> {
  const r = await ctx
    .ops()
    .post<{ partition: number; filled: { from: number; to: number } }>(`api/partitions/${args.partition}/repair`, undefined, {
      after: args.after,
    });
  if (ctx.json) return ctx.out.document(r);
  const { from, to } = r.filled;
  ctx.out.line(`filled partition ${r.partition}, sequence${from === to ? ` ${from}` : `s ${from}..${to}`}, with gap events; readers go on`);
}
