/**
 * `token` and `token check`: development tokens for the gateway, signed with
 * the shared secret (HS256/384/512, what JWT_SECRET configures), and a look
 * inside any token. Production tokens come from your identity provider.
 */
import { SignJWT, decodeJwt, decodeProtectedHeader, errors, jwtVerify, type JWTPayload, type ProtectedHeaderParameters } from 'jose';
import { parseDuration } from '../../config/index.js';
import type { Context } from '../context.js';
import { CliError, usage } from '../errors.js';
import { formatRelative } from '../time.js';

/** The gateway refuses shorter HS secrets (JWT_SECRET must be at least 32 bytes). */
const MIN_SECRET_BYTES = 32;
export const HS_ALGORITHMS = ['HS256', 'HS384', 'HS512'] as const;
export type HsAlgorithm = (typeof HS_ALGORITHMS)[number];
export const DEFAULT_ALGORITHM: HsAlgorithm = 'HS256';

function secretOf(ctx: Context, given: string | undefined): Uint8Array | undefined {
  const secret = given ?? (ctx.io.env['JWT_SECRET'] || undefined);
  if (secret === undefined) return undefined;
  const bytes = new TextEncoder().encode(secret);
  if (bytes.length < MIN_SECRET_BYTES)
    throw usage(`the secret is ${bytes.length} bytes; the gateway accepts HS secrets of at least ${MIN_SECRET_BYTES}`);
  return bytes;
}

function expiry(claims: JWTPayload): string {
  if (typeof claims.exp !== 'number') return 'no exp claim (the gateway refuses tokens without one)';
  const at = new Date(claims.exp * 1000);
  return `${at.toISOString()} (${at.getTime() <= Date.now() ? 'expired ' : ''}${formatRelative(at)})`;
}

export interface MintArgs {
  secret?: string;
  sub: string;
  scope: string[];
  ttl: string;
  claims?: string;
  iss?: string;
  aud?: string;
  alg: HsAlgorithm;
}

/** `token`: mints a token for `--sub` with `--scope`s, valid for `--ttl`; prints it (its claims go to stderr, or into `--json`). */
export async function tokenMint(ctx: Context, args: MintArgs): Promise<void> {
  const secret = secretOf(ctx, args.secret);
  if (!secret) throw usage('give the gateway secret with --secret or JWT_SECRET');
  const ttlMs = parseDuration(args.ttl);
  if (Number.isNaN(ttlMs) || ttlMs < 1_000) throw usage(`bad --ttl ${JSON.stringify(args.ttl)}: use a duration such as 30m, 12h or 7d`);
  let extra: Record<string, unknown> = {};
  if (args.claims !== undefined) {
    try {
      extra = JSON.parse(args.claims) as Record<string, unknown>;
    } catch (err) {
      throw usage(`--claims is not JSON: ${(err as Error).message}`);
    }
    if (extra === null || typeof extra !== 'object' || Array.isArray(extra))
      throw usage('--claims must be a JSON object, e.g. {"policy": {...}}');
  }
  const scopes = args.scope.flatMap((s) => s.split(/\s+/)).filter((s) => s !== '');
  const exp = Math.floor((Date.now() + ttlMs) / 1000);
  const jwt = new SignJWT({ ...extra, ...(scopes.length > 0 ? { scopes: scopes.join(' ') } : {}) })
    .setProtectedHeader({ alg: args.alg, typ: 'JWT' })
    .setSubject(args.sub)
    .setIssuedAt()
    .setExpirationTime(exp);
  if (args.iss !== undefined) jwt.setIssuer(args.iss);
  if (args.aud !== undefined) jwt.setAudience(args.aud);
  const token = await jwt.sign(secret);
  const claims = decodeJwt(token);
  if (ctx.json)
    return ctx.out.document({ token, header: decodeProtectedHeader(token), claims, expiresAt: new Date(exp * 1000).toISOString() });
  ctx.out.line(token);
  ctx.out.note(`subject ${args.sub} · ${scopes.length > 0 ? `scopes ${scopes.join(' ')}` : 'no scopes'} · expires ${expiry(claims)}`);
}

/** `token check <jwt>`: verifies with the secret (or only decodes with --no-verify) and shows the claims and expiry. */
export async function tokenCheck(ctx: Context, args: { jwt: string; secret?: string; verify: boolean }): Promise<void> {
  let header: ProtectedHeaderParameters;
  let claims: JWTPayload;
  try {
    header = decodeProtectedHeader(args.jwt);
    claims = decodeJwt(args.jwt);
  } catch (err) {
    throw usage(`not a JWT: ${(err as Error).message}`);
  }
  let problem: string | undefined;
  if (args.verify) {
    const secret = secretOf(ctx, args.secret);
    if (!secret) throw usage('give the gateway secret with --secret or JWT_SECRET to verify, or --no-verify to only decode');
    try {
      await jwtVerify(args.jwt, secret, { algorithms: [...HS_ALGORITHMS] });
    } catch (err) {
      problem =
        err instanceof errors.JWTExpired
          ? 'TOKEN_EXPIRED'
          : err instanceof errors.JWSSignatureVerificationFailed
            ? 'SIGNATURE_INVALID'
            : err instanceof errors.JOSEAlgNotAllowed
              ? `ALG_NOT_ALLOWED (${String(header.alg)}; this checks HS tokens)`
              : `CLAIMS_INVALID: ${(err as Error).message}`;
    }
  }
  const expired = typeof claims.exp === 'number' && claims.exp * 1000 <= Date.now();
  if (ctx.json)
    ctx.out.document({
      valid: args.verify ? problem === undefined : null,
      verified: args.verify,
      problem: problem ?? null,
      expired,
      header,
      claims,
    });
  else {
    const { c } = ctx.out;
    ctx.out.line(
      !args.verify
        ? c.yellow('decoded, not verified')
        : problem === undefined
          ? c.green(c.bold('✔ valid'))
          : c.red(c.bold(`✖ invalid: ${problem}`)),
    );
    const given = claims['scopes'];
    const scopes = Array.isArray(given) ? given.join(' ') : typeof given === 'string' ? given : '';
    for (const [k, v] of [
      ['algorithm', String(header.alg)],
      ['subject', String(claims.sub ?? '(none: the gateway requires one)')],
      ['expires', expiry(claims)],
      ['scopes', scopes || '(none)'],
    ] as const)
      ctx.out.line(`${c.bold(k.padEnd(9))}  ${v}`);
    ctx.out.line(JSON.stringify(claims, null, 2));
  }
  if (problem !== undefined)
    throw new CliError('REFUSED', `the token does not verify: ${problem}`, { serverCode: problem.split(' ')[0] ?? problem });
}
