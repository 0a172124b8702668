/**
 * The `outbox-hub` command line (bin of the npm package, `cmd/cli`): status,
 * lag, tail, publish, replay, groups, dead letters, repair, tokens and
 * configuration checks, for operators and developers at a terminal.
 *
 * Invariants: it is a client like the dashboard and the SDK: it talks only to
 * the ops API (with the ops tokens) and the gateway (with a JWT, through the
 * project's SDK), never to the database; commands print human output (aligned
 * tables, relative times, colour only on a terminal, progress on stderr) or,
 * with `--json`, one JSON document or NDJSON on stdout; exit codes are 0 ok,
 * 1 failed, 2 usage; nothing here exits the process (cmd/cli does).
 */
export { runCli } from './cli.js';
export { CliError, EXIT, type CliErrorCode } from './errors.js';
export { colorEnabled, OUTPUT_CLOSED, Output, type CliIO, type Column, type Progress, type Terminal } from './output.js';
export { formatAge, formatRelative, parseSpan, parseTime } from './time.js';
export { problems, type Overview } from './api.js';
export { redacted } from './commands/config.js';
export { parseHeaders } from './commands/stream.js';
export { resetTo } from './commands/groups.js';
