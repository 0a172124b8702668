import yargs, { type Argv } from 'yargs';
import { BINARIES, configCheck, type Binary } from './commands/config.js';
import { deadList, deadReplay, deadRequeue, deadShow, DEAD_PAGE } from './commands/dead.js';
import { groupsDelete, groupsList, groupsReset } from './commands/groups.js';
import { lag, repair, status } from './commands/ops.js';
import { publish, replay, tail } from './commands/stream.js';
import { DEFAULT_ALGORITHM, HS_ALGORITHMS, tokenCheck, tokenMint } from './commands/token.js';
import { Context, DEFAULT_GATEWAY_URL, DEFAULT_OPS_URL, type GlobalArgs } from './context.js';
import { CliError, EXIT } from './errors.js';
import { OUTPUT_CLOSED, Output, type CliIO } from './output.js';

/** The flag yargs' completion script calls the command with (`outbox-hub --get-yargs-completions <words>`). */
const COMPLETIONS_FLAG = '--get-yargs-completions';

/** What yargs hands a handler: the global options plus the command's own. */
type Parsed<A> = GlobalArgs & A;
type Run<A> = (ctx: Context, args: A) => Promise<void>;

const EPILOG = [
  'Environment: OUTBOX_HUB_OPS_URL, OUTBOX_HUB_OPS_TOKEN, OUTBOX_HUB_GATEWAY_URL, OUTBOX_HUB_TOKEN (flags win).',
  'Times: ISO-8601 (2026-11-25T10:42:00Z, or local 2026-11-25T10:42) or a time ago (30s, 10m, 2h, 1d).',
  'Exit codes: 0 ok, 1 failed (refused, not found, unreachable), 2 usage (bad arguments or configuration).',
  'Completion: outbox-hub completion >> ~/.bashrc',
].join('\n');

/**
 * The `outbox-hub` command line: parses `argv` with yargs (per-command
 * `--help`, strict options, shell completion), runs the command and returns
 * the exit code. Never exits the process itself.
 */
export async function runCli(argv: readonly string[], io: CliIO): Promise<number> {
  let ran: Context | undefined;
  const wrap =
    <A>(run: Run<A>) =>
    async (args: Parsed<A>): Promise<void> => {
      ran = new Context(io, args);
      await run(ran, args);
    };
  const completing = argv[0] === COMPLETIONS_FLAG;
  const parser = build(yargs(), wrap, io, completing);
  try {
    // Completions of subcommands are printed by yargs itself (console.log), from the process's own argv:
    // only the binary, run by the shell's completion function, asks for them.
    if (completing) {
      await parser.parseAsync([...argv]);
      return EXIT.OK;
    }
    // Everything else yargs prints (help, the completion script) goes to our stdout.
    let printed = '';
    await parser.parseAsync([...argv], {}, (_err, _argv, output) => void (printed = output));
    if (printed !== '') io.stdout.write(`${printed}\n`);
    return EXIT.OK;
  } catch (err) {
    // The reader of stdout went away (`| head`): what it wanted it has; nothing to report.
    if (io.signal.aborted && io.signal.reason === OUTPUT_CLOSED) return EXIT.OK;
    const out = ran?.out ?? new Output(io, { json: false, color: colorFlag(argv) });
    if (err instanceof CliError) {
      out.error(err.message);
      if (err.code === 'USAGE' && !ran) out.note(`run '${commandOf(argv)} --help' for usage`);
      return err.exitCode;
    }
    out.error(`unexpected failure: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return EXIT.FAILED;
  }
}

function colorFlag(argv: readonly string[]): boolean | undefined {
  if (argv.includes('--no-color')) return false;
  return argv.includes('--color') ? true : undefined;
}

/** Command words, to point a usage error at the right `--help`. */
const COMMAND_WORDS: ReadonlySet<string> = new Set(
  'status lag tail publish replay groups dead repair token config ls list reset delete rm show requeue mint check'.split(' '),
);

/** `outbox-hub groups reset` for `groups reset x --to y`: where to ask for --help. */
function commandOf(argv: readonly string[]): string {
  const words: string[] = [];
  for (const a of argv) {
    if (!COMMAND_WORDS.has(a) || words.length >= 2) break;
    words.push(a);
  }
  return ['outbox-hub', ...words].join(' ');
}

function build(y: Argv, wrap: <A>(run: Run<A>) => (args: Parsed<A>) => Promise<void>, io: CliIO, completing: boolean): Argv {
  return y
    .scriptName('outbox-hub')
    .usage('$0 <command> [options]\n\nOperate and watch an Outbox Hub from a terminal, through the ops API and the gateway.')
    .env(false)
    .exitProcess(false)
    .strict()
    .wrap(Math.min(120, io.stdout.columns ?? 120))
    .option('ops', { type: 'string', describe: `ops API URL [env OUTBOX_HUB_OPS_URL, default ${DEFAULT_OPS_URL}]`, global: true })
    .option('ops-token', { type: 'string', describe: 'ops read or admin token [env OUTBOX_HUB_OPS_TOKEN]', global: true })
    .option('gateway', {
      type: 'string',
      describe: `gateway WebSocket URL [env OUTBOX_HUB_GATEWAY_URL, default ${DEFAULT_GATEWAY_URL}]`,
      global: true,
    })
    .option('token', { type: 'string', describe: 'JWT for the gateway [env OUTBOX_HUB_TOKEN]', global: true })
    .option('json', { type: 'boolean', describe: 'one JSON document (NDJSON for streams) on stdout', global: true })
    .option('color', { type: 'boolean', describe: 'colour on or off (default: only on a terminal, off with NO_COLOR)', global: true })
    .group(['ops', 'ops-token', 'gateway', 'token', 'json', 'color', 'help'], 'Global options:')
    .command(
      'status',
      'the ops headline, counters and backlog',
      (c) =>
        c
          .option('all', { type: 'boolean', describe: 'every partition, not only those with a backlog' })
          .option('check', { type: 'boolean', describe: 'exit 1 when the headline names a problem' }),
      wrap(status),
    )
    .command(
      'lag [group]',
      'consumer-group lag per partition, in events and seconds',
      (c) =>
        c
          .positional('group', { type: 'string', describe: 'only this group' })
          .option('all', { type: 'boolean', describe: 'every partition, not only those behind' }),
      wrap(lag),
    )
    .command(
      'tail <pattern>',
      'print events of a topic pattern as they come (Ctrl-C stops)',
      (c) =>
        c
          .positional('pattern', { type: 'string', demandOption: true, describe: 'topic pattern: * one segment, ** any' })
          .option('from', {
            type: 'string',
            default: 'now',
            describe: 'now, earliest, a time (needs ops), or <partition>:<seq>[,...] to start after those sequences',
          })
          .option('count', { type: 'number', describe: 'stop after this many events' })
          .option('for', { type: 'string', describe: 'stop after this long (30s, 5m)' })
          .example('$0 tail "orders.*" --from 10m', 'the last ten minutes of orders, then live')
          .example('$0 tail "orders.**" --from 3:41 --count 1', 'the event after sequence 41 of partition 3'),
      wrap(tail),
    )
    .command(
      'publish <topic> <payload>',
      'publish one event through the gateway',
      (c) =>
        c
          .positional('topic', { type: 'string', demandOption: true })
          .positional('payload', { type: 'string', demandOption: true, describe: "the payload as JSON ('-' reads it from stdin)" })
          .option('key', { type: 'string', describe: 'ordering key (events of one key stay in order)' })
          .option('header', { type: 'string', array: true, describe: 'a header, name=value (repeat for more)' })
          .option('id', { type: 'string', describe: 'event id: publishing the same id again is idempotent' })
          .example(`$0 publish orders.created '{"_id":"o-1","qty":2}' --key o-1`, ''),
      wrap(publish),
    )
    .command(
      'replay <pattern>',
      'the events of a time window, as NDJSON',
      (c) =>
        c
          .positional('pattern', { type: 'string', demandOption: true })
          .option('since', { type: 'string', demandOption: true, describe: 'from this time (10m, 2h, 2026-11-25T10:42)' })
          .option('until', { type: 'string', describe: 'up to this time (default: now)' })
          .example('$0 replay "orders.**" --since 2026-11-24T10:42 --until 2026-11-24T11:00 > orders.ndjson', ''),
      wrap(replay),
    )
    .command('groups', 'consumer groups: ls, reset, delete', (c) =>
      c
        .command(['ls', 'list'], 'groups with their filter and tags, gateways, lag and dead letters', {}, wrap(groupsList))
        .command(
          'reset <group>',
          'move a group to earliest, latest or a time (refused while it has consumers, unless --force)',
          (r) =>
            r
              .positional('group', { type: 'string', demandOption: true })
              .option('to', { type: 'string', demandOption: true, describe: 'earliest, latest or a time (2026-11-25T10:42, 1h)' })
              .option('force', { type: 'boolean', describe: 'reset while members are connected: their gateways are fenced out' })
              .example('$0 groups reset billing --to 2026-11-24T10:42', 'redeliver everything billing saw since 10:42 that day'),
          wrap(groupsReset),
        )
        .command(
          ['delete <group>', 'rm <group>'],
          'delete a group with its cursors and dead letters',
          (r) => r.positional('group', { type: 'string', demandOption: true }),
          wrap(groupsDelete),
        )
        .demandCommand(1, 'name a groups command: ls, reset or delete'),
    )
    .command('dead', 'dead messages and letters: ls, show, requeue, replay', (c) =>
      c
        .command(
          ['ls', 'list'],
          'dead outbox messages and group dead letters',
          (r) =>
            r
              .option('group', { type: 'string', describe: "only this group's dead letters (read now, not from the sample)" })
              .option('limit', { type: 'number', default: 50, describe: `at most this many per partition or group (up to ${DEAD_PAGE})` }),
          wrap(deadList),
        )
        .command(
          'show <id>',
          'one dead outbox message (or, with --group, dead letter) in full',
          (r) => r.positional('id', { type: 'string', demandOption: true }).option('group', { type: 'string' }),
          wrap(deadShow),
        )
        .command(
          'requeue [ids..]',
          'dead outbox messages back to pending (idempotent)',
          (r) =>
            r
              .positional('ids', { type: 'string', array: true })
              .option('all', { type: 'boolean', describe: `every dead message (up to ${DEAD_PAGE} per partition)` }),
          wrap(deadRequeue),
        )
        .command(
          'replay <group> [ids..]',
          "deliver a group's dead letters again (idempotent)",
          (r) =>
            r
              .positional('group', { type: 'string', demandOption: true })
              .positional('ids', { type: 'string', array: true })
              .option('all', { type: 'boolean', describe: `every dead letter of the group (up to ${DEAD_PAGE})` }),
          wrap(deadReplay),
        )
        .demandCommand(1, 'name a dead command: ls, show, requeue or replay'),
    )
    .command(
      'repair <partition>',
      'fill a hole in the log with gap events',
      (c) =>
        c
          .positional('partition', { type: 'number', demandOption: true })
          .option('after', { type: 'number', demandOption: true, describe: 'the last sequence present before the hole' }),
      wrap(repair),
    )
    .command('token', 'mint a development token, or check one', (c) =>
      c
        .command(
          ['mint', '$0'],
          'mint an HS token from the gateway secret; prints it',
          (m) =>
            m
              .option('secret', { type: 'string', describe: 'the gateway secret [env JWT_SECRET]' })
              .option('sub', { type: 'string', default: 'dev', describe: 'subject' })
              .option('scope', {
                type: 'string',
                array: true,
                default: ['publish:**', 'subscribe:**'],
                describe: 'scopes (repeat, or space-separated)',
              })
              .option('ttl', { type: 'string', default: '12h', describe: 'lifetime (30m, 12h, 7d)' })
              .option('claims', { type: 'string', describe: 'more claims as a JSON object, e.g. a policy' })
              .option('iss', { type: 'string', describe: 'issuer (when the gateway checks JWT_ISSUER)' })
              .option('aud', { type: 'string', describe: 'audience (when the gateway checks JWT_AUDIENCE)' })
              .option('alg', { choices: HS_ALGORITHMS, default: DEFAULT_ALGORITHM }),
          wrap(tokenMint),
        )
        .command(
          'check <jwt>',
          'verify a token with the secret and show its claims and expiry',
          (k) =>
            k
              .positional('jwt', { type: 'string', demandOption: true })
              .option('secret', { type: 'string', describe: 'the gateway secret [env JWT_SECRET]' })
              .option('verify', { type: 'boolean', default: true, describe: 'check the signature and expiry (--no-verify only decodes)' }),
          wrap(tokenCheck),
        ),
    )
    .command('config', "check a binary's configuration", (c) =>
      c
        .command(
          'check <binary>',
          "validate a binary's environment without starting it (the binary's own checks and messages)",
          (k) => k.positional('binary', { choices: BINARIES, demandOption: true }).example('MONGO_URL=... $0 config check drainer', ''),
          wrap((ctx, args: { binary: Binary }) => configCheck(ctx, args)),
        )
        .demandCommand(1, 'name a config command: check'),
    )
    .completion('completion', 'print a bash/zsh completion script')
    .demandCommand(1, 'name a command')
    .recommendCommands()
    .epilog(EPILOG)
    .help()
    .alias('help', 'h')
    .version(false)
    .fail((message, err) => {
      // Completing a partial command line validates it on the way: nothing to report then.
      if (completing) return;
      // Throwing stops yargs from running the handler after a validation failure.
      if (err) throw err;
      throw new CliError('USAGE', message);
    });
}
