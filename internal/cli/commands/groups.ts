/** `groups ls|reset|delete`: consumer groups through the ops API. */
import type { GroupView, ResetAnswer } from '../api.js';
import type { Context } from '../context.js';
import { CliError } from '../errors.js';
import { formatAge, formatRelative, parseTime } from '../time.js';

export async function groupsList(ctx: Context): Promise<void> {
  const r = await ctx.ops().get<{ sampledAt: string; groups: GroupView[] }>('api/groups');
  if (ctx.json) return ctx.out.document(r);
  const { c } = ctx.out;
  ctx.out.printTable(
    [
      { head: 'group' },
      { head: 'filter' },
      { head: 'gateways', align: 'right' },
      { head: 'lag (events)', align: 'right' },
      { head: 'max lag', align: 'right' },
      { head: 'dead letters', align: 'right' },
    ],
    r.groups.map((g) => [
      g.group,
      // Worded as the hub words a group's definition (a GROUP_MISMATCH names it so).
      g.tags && g.tags.length > 0 ? `${g.filter} with tags ${g.tags.join(', ')}` : g.filter,
      g.gateways === 0 && g.lagEvents > 0 ? c.red('0') : g.gateways,
      `${g.lagExact ? '' : '~'}${g.lagEvents}`,
      g.maxLagSeconds > 60 ? c.red(formatAge(g.maxLagSeconds)) : formatAge(g.maxLagSeconds),
      g.deadLetters > 0 ? c.red(String(g.deadLetters)) : 0,
    ]),
    'no consumer groups',
  );
  ctx.out.note(`as of ops' sample ${formatRelative(r.sampledAt)}`);
}

/** `earliest`, `latest`, or a time as {@link parseTime} reads it (sent as ISO-8601). */
export function resetTo(text: string, now = new Date()): string {
  return text === 'earliest' || text === 'latest' ? text : parseTime(text, '--to time', now).toISOString();
}

/** `groups reset <group> --to earliest|latest|<time> [--force]`. */
export async function groupsReset(ctx: Context, args: { group: string; to: string; force?: boolean }): Promise<void> {
  const to = resetTo(args.to);
  let r: ResetAnswer;
  try {
    r = await ctx.ops().post<ResetAnswer>(`api/groups/${encodeURIComponent(args.group)}/reset`, { to, force: args.force === true });
  } catch (err) {
    if (err instanceof CliError && err.serverCode === 'GROUP_ACTIVE')
      throw new CliError('CONFLICT', `${err.message.replace(/ \(GROUP_ACTIVE\)$/, '')} (--force)`, { serverCode: 'GROUP_ACTIVE' });
    throw err;
  }
  if (ctx.json) return ctx.out.document(r);
  const { c } = ctx.out;
  const when = to === 'earliest' || to === 'latest' ? to : `${to} (${formatRelative(to)})`;
  ctx.out.line(`group ${c.bold(r.group)} reset to ${when} in ${r.partitions.length} partitions`);
  ctx.out.printTable(
    [{ head: 'partition', align: 'right' }, { head: 'cursor was', align: 'right' }, { head: 'cursor', align: 'right' }, { head: '' }],
    r.partitions.map((p) => [p.partition, p.previous, p.cursor, p.fenced ? c.yellow('fenced a gateway') : '']),
  );
  const fenced = r.partitions.filter((p) => p.fenced).length;
  if (fenced > 0)
    ctx.out.warn(
      `${fenced} partitions were held by a gateway: it stops at its next cursor write and the next owner starts from the new cursor; ` +
        'its members may receive a few events from before the reset',
    );
}

/** `groups delete <group>`: the group with its cursors and dead letters (refused while it has consumers). */
export async function groupsDelete(ctx: Context, args: { group: string }): Promise<void> {
  const r = await ctx.ops().delete<{ deleted: string }>(`api/groups/${encodeURIComponent(args.group)}`);
  if (ctx.json) return ctx.out.document(r);
  ctx.out.line(`deleted group ${r.deleted}`);
}
