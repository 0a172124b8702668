/**
 * `config check <drainer|gateway|ops>`: runs the binary's own configuration
 * loader on this environment, without starting anything, and reports what the
 * binary would: the same message and exit code 2 when it is invalid.
 */
import { isHubError } from '../../errors/index.js';
import type { Context } from '../context.js';
import { CliError } from '../errors.js';

export const BINARIES = ['drainer', 'gateway', 'ops'] as const;
export type Binary = (typeof BINARIES)[number];

type Loader = (env: Readonly<Record<string, string | undefined>>) => { readonly secrets: readonly string[] };

/**
 * The binary's loader, imported only now: the binaries' packages need the
 * database driver, which a laptop with only the SDK installed does not have.
 */
async function loader(binary: Binary): Promise<Loader> {
  try {
    switch (binary) {
      case 'drainer':
        return (await import('../../drainer/index.js')).loadDrainerConfig;
      case 'gateway':
        return (await import('../../gateway/index.js')).loadGatewayConfig;
      case 'ops':
        return (await import('../../ops/index.js')).loadOpsConfig;
    }
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    throw new CliError(
      'FAILED',
      `config check needs what the ${binary} needs: ${(err as Error).message} (npm install mongodb@7 beside outbox-hub)`,
      {
        cause: err,
      },
    );
  }
}

/** A printable copy of a configuration: every configured secret replaced by `***`, keys and clients by their kind. */
export function redacted(value: unknown, secrets: readonly string[]): unknown {
  const scrub = (s: string): string => secrets.filter((x) => x.length > 0).reduce((t, x) => t.split(x).join('***'), s);
  if (typeof value === 'string') return scrub(value);
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Uint8Array) return '***';
  if (value instanceof Date) return value.toISOString();
  if (value instanceof RegExp) return String(value);
  if (Array.isArray(value)) return value.map((v) => redacted(v, secrets));
  const proto = Object.getPrototypeOf(value) as object | null;
  if (proto !== Object.prototype && proto !== null)
    return `[${(value as { constructor?: { name?: string } }).constructor?.name ?? 'object'}]`;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redacted(v, secrets)]));
}

export async function configCheck(ctx: Context, args: { binary: Binary }): Promise<void> {
  const load = await loader(args.binary);
  let cfg: { readonly secrets: readonly string[] };
  try {
    cfg = load(ctx.io.env);
  } catch (err) {
    if (!isHubError(err, 'CONFIG_INVALID')) throw err;
    const variables = (err as { variables?: readonly string[] }).variables ?? [];
    if (ctx.json) ctx.out.document({ binary: args.binary, valid: false, error: err.code, message: err.message, variables });
    // Exactly the binary's message, and its exit code (2).
    throw new CliError('USAGE', err.message);
  }
  const { secrets, ...rest } = cfg as { secrets: readonly string[] } & Record<string, unknown>;
  const shown = redacted(rest, secrets) as Record<string, unknown>;
  if (ctx.json) return ctx.out.document({ binary: args.binary, valid: true, config: shown });
  ctx.out.line(ctx.out.c.green(`✔ the ${args.binary} configuration in this environment is valid`));
  ctx.out.printTable(
    [{ head: 'setting' }, { head: 'value' }],
    Object.entries(shown).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]),
  );
}
