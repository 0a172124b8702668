#!/usr/bin/env node
/** The `outbox-hub` command line. Commands: see internal/cli; `outbox-hub --help`. */
import { OUTPUT_CLOSED, runCli } from '../../internal/cli/index.js';

// The first Ctrl-C (or SIGTERM) asks the command to stop cleanly (a tail closes its connection);
// a second one is the default: exit at once. A reader of stdout that goes away (`| head`) stops it too.
const stop = new AbortController();
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => stop.abort(signal));
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  stop.abort(OUTPUT_CLOSED);
});
process.exitCode = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  signal: stop.signal,
});
