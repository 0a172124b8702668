/**
 * `dead ls|show|requeue|replay`: dead outbox messages and consumer-group dead
 * letters. Requeue and replay are idempotent: the server moves a message or
 * letter only out of the dead state, so running either twice delivers nothing
 * twice (what is no longer dead is reported as skipped).
 */
import type { DeadLetters, DeadMessage, GroupDeadLetter } from '../api.js';
import type { Context } from '../context.js';
import { CliError, usage } from '../errors.js';
import { formatRelative } from '../time.js';

/** Most dead messages (per partition) and letters (per group) one listing or `--all` covers; run again for more. */
export const DEAD_PAGE = 500;

function shorten(text: string | null | undefined, max = 60): string {
  const t = (text ?? '').replace(/\s+/g, ' ');
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

async function groupLetters(ctx: Context, group: string, limit: number): Promise<GroupDeadLetter[]> {
  return (await ctx.ops().get<{ letters: GroupDeadLetter[] }>(`api/groups/${encodeURIComponent(group)}/dead-letters`, { limit })).letters;
}

export async function deadList(ctx: Context, args: { group?: string; limit: number }): Promise<void> {
  const d: DeadLetters =
    args.group === undefined
      ? await ctx.ops().get<DeadLetters>('api/dead-letters', { limit: args.limit })
      : { outbox: [], groups: [{ group: args.group, letters: await groupLetters(ctx, args.group, args.limit) }] };
  if (ctx.json) return ctx.out.document(d);
  if (args.group === undefined) {
    ctx.out.line(ctx.out.c.bold('Dead outbox messages'));
    ctx.out.printTable(
      [
        { head: 'id' },
        { head: 'partition', align: 'right' },
        { head: 'topic' },
        { head: 'key' },
        { head: 'attempts', align: 'right' },
        { head: 'died' },
        { head: 'last error' },
      ],
      d.outbox.map((m) => [
        m.id,
        m.partition,
        m.topic,
        m.key ?? '',
        m.attempts,
        m.diedAt ? formatRelative(m.diedAt) : '',
        shorten(m.lastError),
      ]),
    );
    ctx.out.line();
  }
  ctx.out.line(ctx.out.c.bold('Group dead letters'));
  const letters = d.groups.flatMap((g) => g.letters);
  ctx.out.printTable(
    [
      { head: 'group' },
      { head: 'event id' },
      { head: 'topic' },
      { head: 'partition', align: 'right' },
      { head: 'deliveries', align: 'right' },
      { head: 'status' },
      { head: 'dead' },
      { head: 'reason' },
    ],
    letters.map((l) => [
      l.group,
      l.event.id,
      l.event.topic,
      l.event.partition,
      l.deliveries,
      l.status,
      formatRelative(l.deadAt),
      shorten(l.reason),
    ]),
  );
  if (args.group === undefined) ctx.out.note("group dead letters as of ops' last sample; --group <name> reads one group now");
}

export async function deadShow(ctx: Context, args: { id: string; group?: string }): Promise<void> {
  if (args.group !== undefined) {
    const letter = (await groupLetters(ctx, args.group, DEAD_PAGE)).find((l) => l.event.id === args.id);
    if (!letter) throw new CliError('NOT_FOUND', `no dead letter ${args.id} in group ${args.group}`);
    if (ctx.json) return ctx.out.document(letter);
    return details(ctx, [
      ['group', letter.group],
      ['event id', letter.event.id],
      ['topic', letter.event.topic],
      ['key', letter.event.key ?? ''],
      ['position', `partition ${letter.event.partition}, seq ${letter.event.seq}`],
      ['deliveries', String(letter.deliveries)],
      ['status', letter.status],
      ['dead since', `${letter.deadAt} (${formatRelative(letter.deadAt)})`],
      ['reason', letter.reason],
      ['headers', JSON.stringify(letter.event.headers)],
      ['payload', JSON.stringify(letter.event.payload, null, 2)],
    ]);
  }
  let m: DeadMessage;
  try {
    m = await ctx.ops().get<DeadMessage>(`api/outbox/${encodeURIComponent(args.id)}`);
  } catch (err) {
    if (err instanceof CliError && err.code === 'NOT_FOUND')
      throw new CliError(
        'NOT_FOUND',
        `no outbox message ${args.id} (a published message leaves the outbox; a group's dead letter needs --group)`,
      );
    throw err;
  }
  if (ctx.json) return ctx.out.document(m);
  details(ctx, [
    ['id', m.id],
    ['status', m.status === 'dead' ? ctx.out.c.red('dead') : m.status],
    ['topic', m.topic],
    ['key', m.key ?? ''],
    ['partition', String(m.partition)],
    ['attempts', String(m.attempts)],
    ['created', `${m.createdAt} (${formatRelative(m.createdAt)})`],
    ['died', m.diedAt ? `${m.diedAt} (${formatRelative(m.diedAt)})` : ''],
    ['last error', m.lastError ?? ''],
    ['headers', JSON.stringify(m.headers)],
    ['payload', JSON.stringify(m.payload, null, 2)],
  ]);
}

function details(ctx: Context, rows: Array<[string, string]>): void {
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) ctx.out.line(`${ctx.out.c.bold(k.padEnd(width))}  ${v.replace(/\n/g, `\n${' '.repeat(width + 2)}`)}`);
}

/** Applies `act` to each id with a progress bar; a NOT_FOUND (no longer dead) is a skip, anything else stops. */
async function each(
  ctx: Context,
  label: string,
  ids: readonly string[],
  act: (id: string) => Promise<unknown>,
): Promise<{ done: string[]; skipped: string[] }> {
  const done: string[] = [];
  const skipped: string[] = [];
  const bar = ctx.out.progress(label, ids.length, 'messages');
  try {
    for (const id of ids) {
      if (ctx.io.signal.aborted) throw new CliError('FAILED', `interrupted after ${done.length} of ${ids.length}`);
      try {
        await act(id);
        done.push(id);
      } catch (err) {
        if (!(err instanceof CliError && err.code === 'NOT_FOUND')) throw err;
        skipped.push(id);
      }
      bar.increment();
    }
  } finally {
    bar.stop();
  }
  return { done, skipped };
}

/** `dead requeue <id...> | --all`: dead outbox messages back to pending (appended after what is pending). */
export async function deadRequeue(ctx: Context, args: { ids?: string[]; all?: boolean }): Promise<void> {
  const ids = await chosen(args, async () =>
    (await ctx.ops().get<DeadLetters>('api/dead-letters', { limit: DEAD_PAGE })).outbox.map((m) => m.id),
  );
  const r = await each(ctx, 'requeue', ids, (id) => ctx.ops().post(`api/outbox/${encodeURIComponent(id)}/requeue`));
  if (ctx.json) return ctx.out.document({ requeued: r.done, skipped: r.skipped });
  ctx.out.line(
    `requeued ${r.done.length} dead message${r.done.length === 1 ? '' : 's'}${r.done.length > 0 ? `: ${r.done.join(', ')}` : ''}`,
  );
  if (r.skipped.length > 0)
    ctx.out.line(ctx.out.c.dim(`skipped ${r.skipped.length} not dead (already requeued, published, or unknown): ${r.skipped.join(', ')}`));
}

/** `dead replay <group> <event id...> | --all`: a group's dead letters delivered again. */
export async function deadReplay(ctx: Context, args: { group: string; ids?: string[]; all?: boolean }): Promise<void> {
  // Read first even with ids: an unknown group is an error, not a list of skips.
  const letters = await groupLetters(ctx, args.group, DEAD_PAGE);
  const ids = await chosen(args, () => Promise.resolve(letters.filter((l) => l.status === 'dead').map((l) => l.event.id)));
  const r = await each(ctx, 'replay', ids, (id) =>
    ctx.ops().post(`api/groups/${encodeURIComponent(args.group)}/dead-letters/${encodeURIComponent(id)}/replay`),
  );
  if (ctx.json) return ctx.out.document({ group: args.group, replaying: r.done, skipped: r.skipped });
  ctx.out.line(
    `replaying ${r.done.length} dead letter${r.done.length === 1 ? '' : 's'} of group ${args.group}${r.done.length > 0 ? `: ${r.done.join(', ')}` : ''}`,
  );
  if (r.skipped.length > 0)
    ctx.out.line(
      ctx.out.c.dim(`skipped ${r.skipped.length} not dead (replay already requested or done, or unknown): ${r.skipped.join(', ')}`),
    );
}

async function chosen(args: { ids?: string[]; all?: boolean }, all: () => Promise<string[]>): Promise<string[]> {
  const given = args.ids ?? [];
  if (args.all === true && given.length > 0) throw usage('give ids or --all, not both');
  if (args.all !== true && given.length === 0) throw usage('name the ids to act on, or --all');
  return args.all === true ? all() : [...new Set(given)];
}
