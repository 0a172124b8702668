/** `tail`, `publish` and `replay`: events through the gateway (the project's SDK) and the ops export. */
import type { StartFrom } from '../../protocol/index.js';
import { HubClientError, type HubEvent } from '../../sdk/index.js';
import { TopicPattern, topicProblem } from '../../topic/index.js';
import type { Positions, WireEvent } from '../api.js';
import type { Context } from '../context.js';
import { CliError, usage } from '../errors.js';
import { parseSpan, parseTime } from '../time.js';

function compile(pattern: string): TopicPattern {
  try {
    return TopicPattern.compile(pattern);
  } catch (err) {
    throw usage(`bad topic pattern ${JSON.stringify(pattern)}: ${(err as Error).message}`);
  }
}

/** Per partition, the last sequence before `at` (ops answers with one indexed lookup per partition). */
async function positionsAt(ctx: Context, at: Date): Promise<Record<string, number>> {
  return (await ctx.ops().get<Positions>('api/positions', { at: at.toISOString() })).positions;
}

/**
 * A `--from` value: `now`, `earliest`, `<partition>:<seq>[,...]` (start after
 * those sequences; other partitions from now), or a time (ops turns it into a
 * sequence per partition, so a time needs the ops API).
 */
export async function startFrom(ctx: Context, text: string): Promise<{ from: StartFrom; label: string }> {
  if (text === 'now' || text === 'earliest') return { from: text, label: text };
  if (/^\d+:\d+(,\d+:\d+)*$/.test(text)) {
    const from: Record<string, number> = {};
    for (const pair of text.split(',')) {
      const [p = '', seq = ''] = pair.split(':');
      from[String(Number(p))] = Number(seq);
    }
    return { from, label: text };
  }
  const at = parseTime(text, '--from time');
  return { from: await positionsAt(ctx, at), label: `${at.toISOString()} (positions from ops)` };
}

function clock(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** `tail <pattern>`: live events (after an optional replay from `--from`) until Ctrl-C, `--count` or `--for`. */
export async function tail(ctx: Context, args: { pattern: string; from: string; count?: number; for?: string }): Promise<void> {
  const pattern = compile(args.pattern);
  const forMs = args.for === undefined ? undefined : parseSpan(args.for);
  if (forMs !== undefined && Number.isNaN(forMs))
    throw usage(`bad --for ${JSON.stringify(args.for)}: use a duration such as 30s, 5m or 1h`);
  if (args.count !== undefined && (!Number.isSafeInteger(args.count) || args.count < 1))
    throw usage('--count must be a whole number from 1');
  const { from, label } = await startFrom(ctx, args.from);
  const session = await ctx.gateway();
  const out = ctx.out;
  const tty = ctx.io.stderr.isTTY === true;
  let seen = 0;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const onAbort = (): void => finish();
  ctx.io.signal.addEventListener('abort', onAbort, { once: true });
  const timer = forMs === undefined ? undefined : setTimeout(finish, forMs);
  let revoked: CliError | undefined;
  session.onNotice((err) => {
    if (err.code === 'REPLAY_TRUNCATED')
      out.warn(`the replay was cut short by the gateway (MAX_REPLAY): ${err.message}; live events follow`);
    else if (err.code === 'SUBSCRIPTION_REVOKED') {
      revoked = new CliError('REFUSED', `the gateway ended the subscription: ${err.message}`, { serverCode: err.code });
      finish();
    } else out.warn(`${err.code}: ${err.message}`);
  });
  const width = ctx.io.stdout.isTTY === true ? (ctx.io.stdout.columns ?? 120) : Infinity;
  const print = async (event: HubEvent<unknown>): Promise<void> => {
    if (args.count !== undefined && seen >= args.count) return;
    seen++;
    if (out.json) await out.record(event);
    else {
      const { c } = out;
      const head = `${c.dim(clock(event.publishedAt))} ${c.cyan(event.topic)} ${c.yellow(event.key ?? '-')} ${c.dim(`p${event.partition}:${event.seq}`)} `;
      const visible = `${clock(event.publishedAt)} ${event.topic} ${event.key ?? '-'} p${event.partition}:${event.seq} `.length;
      const body = JSON.stringify(event.payload) ?? 'null';
      const room = width - visible;
      out.line(head + (body.length > room ? `${body.slice(0, Math.max(0, room - 1))}…` : body));
    }
    if (args.count !== undefined && seen >= args.count) finish();
  };
  try {
    try {
      await session.client.subscribe(args.pattern, { from }, (_payload, event) => print(event));
    } catch (err) {
      if (err instanceof HubClientError)
        throw new CliError('REFUSED', `the gateway refused the subscription: ${err.message} (${err.code})`, { serverCode: err.code });
      throw err;
    }
    if (tty) out.note(`tailing ${pattern.source} from ${label} (Ctrl-C to stop)`);
    await Promise.race([finished, session.failed]);
    if (revoked) throw revoked;
  } finally {
    clearTimeout(timer);
    ctx.io.signal.removeEventListener('abort', onAbort);
    await session.close();
  }
  if (tty) out.note(`${seen} event${seen === 1 ? '' : 's'}`);
}

/** `key=value` pairs of `--header` into a header map. */
export function parseHeaders(pairs: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw usage(`bad --header ${JSON.stringify(pair)}: use name=value`);
    headers[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return headers;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString('utf8');
}

/** `publish <topic> <json>`: one event through the gateway, acknowledged once durable (`-` reads the JSON from stdin). */
export async function publish(
  ctx: Context,
  args: { topic: string; payload: string; key?: string; header?: string[]; id?: string },
): Promise<void> {
  const problem = topicProblem(args.topic);
  if (problem !== undefined) throw usage(`bad topic: ${problem}`);
  // yargs hands a lone `-` over as '' (and an empty payload is no JSON anyway): both read stdin.
  const text = args.payload === '-' || args.payload === '' ? await readAll(ctx.io.stdin) : args.payload;
  let payload: unknown;
  try {
    payload = JSON.parse(text);
  } catch (err) {
    throw usage(`the payload is not JSON: ${(err as Error).message} (quote it for the shell: '{"total": 9}')`);
  }
  const headers = parseHeaders(args.header ?? []);
  const session = await ctx.gateway();
  let eventId: string;
  try {
    eventId = await Promise.race([
      session.client.publish(args.topic, payload, {
        ...(args.key === undefined ? {} : { key: args.key }),
        ...(Object.keys(headers).length === 0 ? {} : { headers }),
        ...(args.id === undefined ? {} : { eventId: args.id }),
      }),
      session.failed,
    ]);
  } catch (err) {
    if (err instanceof HubClientError)
      throw new CliError('REFUSED', `the gateway refused the event: ${err.message} (${err.code})`, { serverCode: err.code });
    throw err;
  } finally {
    await session.close();
  }
  if (ctx.json) return ctx.out.document({ eventId, topic: args.topic, key: args.key ?? null, headers });
  ctx.out.line(
    `published ${ctx.out.c.cyan(args.topic)}${args.key === undefined ? '' : ` key ${args.key}`} → event ${ctx.out.c.bold(eventId)}`,
  );
}

/**
 * `replay <pattern> --since <time> [--until <time>]`: the events published in
 * that window, as NDJSON on stdout, read through the ops export partition by
 * partition (in order within each partition), with a progress bar on a terminal.
 */
export async function replay(ctx: Context, args: { pattern: string; since: string; until?: string }): Promise<void> {
  const pattern = compile(args.pattern);
  const now = new Date();
  const since = parseTime(args.since, '--since time', now);
  const until = args.until === undefined ? now : parseTime(args.until, '--until time', now);
  if (until.getTime() < since.getTime()) throw usage('--until is before --since');
  const [after, upTo] = await Promise.all([positionsAt(ctx, since), positionsAt(ctx, until)]);
  const partitions = Object.keys(upTo)
    .map(Number)
    .sort((a, b) => a - b);
  const range = (p: number): [number, number] => [after[String(p)] ?? 0, upTo[String(p)] ?? 0];
  const total = partitions.reduce((n, p) => n + Math.max(0, range(p)[1] - range(p)[0]), 0);
  const bar = ctx.out.progress('replay', total, 'events');
  const started = Date.now();
  let written = 0;
  try {
    for (const p of partitions) {
      const [from, to] = range(p);
      if (to <= from) continue;
      let at = from;
      for await (const line of ctx.ops().lines('api/events/export', {
        partition: p,
        after: from,
        until: to,
        ...(pattern.exact ? { topic: pattern.source } : {}),
      })) {
        const e = JSON.parse(line) as WireEvent & { gap?: boolean };
        bar.increment(e.seq - at);
        at = e.seq;
        if (e.gap === true || !pattern.matches(e.topic)) continue;
        await ctx.out.record(e);
        written++;
        if (ctx.io.signal.aborted) throw new CliError('FAILED', `interrupted after ${written} events`);
      }
      bar.increment(to - at);
    }
  } finally {
    bar.stop();
  }
  if (ctx.io.stderr.isTTY === true)
    ctx.out.note(
      `${written} event${written === 1 ? '' : 's'} of ${pattern.source} from ${since.toISOString()} to ${until.toISOString()} in ${((Date.now() - started) / 1000).toFixed(1)}s`,
    );
}
