import { readFile } from 'node:fs/promises';
import { createRemoteJWKSet, errors as joseErrors, importSPKI, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { AuthError, type AuthErrorCode } from './errors.js';
import { Policy } from './policy.js';

/** An authenticated client. */
export interface Principal {
  readonly subject: string;
  /** When the token expires; the connection must re-authenticate before then. */
  readonly expiresAt: Date;
  readonly policy: Policy;
}

/** The token-verification port (the jose adapter is {@link createJoseVerifier}). */
export interface TokenVerifier {
  verify(token: string, options?: { signal?: AbortSignal }): Promise<Principal>;
}

/** Algorithms the gateway can be configured to accept. `none` is never among them. */
export const SUPPORTED_ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA'] as const;
/** One of {@link SUPPORTED_ALGORITHMS}. */
export type Algorithm = (typeof SUPPORTED_ALGORITHMS)[number];

/** Upper bound on clock tolerance, in seconds. */
export const MAX_CLOCK_TOLERANCE_S = 300;
/** Longest token accepted, in characters. */
export const MAX_TOKEN_LENGTH = 16 * 1024;
/** Longest subject accepted, in characters (OpenID Connect's bound). */
export const MAX_SUBJECT_LENGTH = 255;

/** Where verification keys come from. */
export type KeySource =
  | { kind: 'secret'; secret: string }
  | { kind: 'pem'; pem: string }
  | { kind: 'pem-file'; path: string }
  | {
      kind: 'jwks';
      url: string;
      timeoutMs: number;
      /** Least time between refetches for an unknown `kid`. */
      cooldownMs: number;
      /**
       * Age after which the cached key set is fetched again before a verification: a key
       * removed from the JWKS stops verifying new tokens at most this long (plus one fetch) later.
       */
      cacheMaxAgeMs: number;
    };

/** Options for {@link createJoseVerifier}. */
export interface JoseVerifierOptions {
  /** Accepted algorithms; the token's own `alg` never widens this. */
  algorithms: readonly Algorithm[];
  keys: KeySource;
  issuer?: string;
  audience?: string;
  clockToleranceS?: number;
}

const HMAC = new Set(['HS256', 'HS384', 'HS512']);

/** Maps jose's error codes onto ours. */
function classify(err: unknown, remoteKeys: boolean): AuthError {
  if (err instanceof AuthError) return err;
  const code = (err as { code?: string }).code;
  const map: Record<string, AuthErrorCode> = {
    ERR_JWT_EXPIRED: 'TOKEN_EXPIRED',
    ERR_JOSE_ALG_NOT_ALLOWED: 'ALG_NOT_ALLOWED',
    ERR_JWS_SIGNATURE_VERIFICATION_FAILED: 'SIGNATURE_INVALID',
    ERR_JWKS_NO_MATCHING_KEY: 'UNKNOWN_KEY',
    ERR_JWKS_MULTIPLE_MATCHING_KEYS: 'UNKNOWN_KEY',
    ERR_JWKS_TIMEOUT: 'KEYS_UNAVAILABLE',
    ERR_JWKS_INVALID: 'KEYS_UNAVAILABLE',
  };
  let ours: AuthErrorCode = (code !== undefined && map[code]) || 'TOKEN_MALFORMED';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    ours = err.claim === 'iss' ? 'BAD_ISSUER' : err.claim === 'aud' ? 'BAD_AUDIENCE' : 'CLAIMS_INVALID';
  }
  // Not a jose error at all: with a remote key set that is the fetch failing.
  if (remoteKeys && !(err instanceof joseErrors.JOSEError)) ours = 'KEYS_UNAVAILABLE';
  return new AuthError(ours, err instanceof Error ? err.message : 'token refused', { cause: err });
}

/**
 * A {@link TokenVerifier} on jose: HS* with a shared secret, RS/PS/ES/EdDSA with
 * a PEM public key, or a remote JWKS with explicit timeout, cooldown and cache
 * age (key rotation: an unknown `kid` refetches at most once per cooldown; a
 * key set older than its cache age is refetched before use, so a removed key
 * stops verifying within that age).
 */
export async function createJoseVerifier(options: JoseVerifierOptions): Promise<TokenVerifier> {
  const algorithms = [...options.algorithms];
  if (algorithms.length === 0) throw new AuthError('VERIFIER_CONFIG', 'at least one algorithm must be allowed');
  const tolerance = options.clockToleranceS ?? 30;
  if (tolerance < 0 || tolerance > MAX_CLOCK_TOLERANCE_S)
    throw new AuthError('VERIFIER_CONFIG', `clock tolerance must be 0-${MAX_CLOCK_TOLERANCE_S} s`);
  const hmac = algorithms.filter((a) => HMAC.has(a));
  const keys = options.keys;
  if (keys.kind === 'secret' && hmac.length !== algorithms.length)
    throw new AuthError('VERIFIER_CONFIG', 'a shared secret only verifies HS* algorithms');
  if (keys.kind !== 'secret' && hmac.length > 0)
    throw new AuthError('VERIFIER_CONFIG', 'HS* algorithms need a shared secret, not public keys');
  if (keys.kind === 'secret' && new TextEncoder().encode(keys.secret).length < 32)
    throw new AuthError('VERIFIER_CONFIG', 'the shared secret must be at least 32 bytes');

  let key: Uint8Array | CryptoKey | JWTVerifyGetKey;
  if (keys.kind === 'secret') key = new TextEncoder().encode(keys.secret);
  else if (keys.kind === 'jwks')
    key = createRemoteJWKSet(new URL(keys.url), {
      timeoutDuration: keys.timeoutMs,
      cooldownDuration: keys.cooldownMs,
      cacheMaxAge: keys.cacheMaxAgeMs,
    });
  else {
    const pem = keys.kind === 'pem' ? keys.pem : await readFile(keys.path, 'utf8');
    if (algorithms.length !== 1) throw new AuthError('VERIFIER_CONFIG', 'a PEM public key goes with exactly one algorithm');
    try {
      key = await importSPKI(pem, algorithms[0] as string);
    } catch (err) {
      throw new AuthError('VERIFIER_CONFIG', `cannot import the public key for ${algorithms[0]}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  return {
    async verify(token: string): Promise<Principal> {
      if (typeof token !== 'string' || token.length === 0) throw new AuthError('TOKEN_MISSING', 'a token is required');
      if (token.length > MAX_TOKEN_LENGTH) throw new AuthError('TOKEN_MALFORMED', 'token too long');
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, key as Uint8Array, {
          algorithms,
          clockTolerance: tolerance,
          requiredClaims: ['exp', 'sub'],
          ...(options.issuer === undefined ? {} : { issuer: options.issuer }),
          ...(options.audience === undefined ? {} : { audience: options.audience }),
        }));
      } catch (err) {
        throw classify(err, keys.kind === 'jwks');
      }
      // jose checks that sub is present, not its type: a numeric sub would collide with the string one.
      const subject = payload.sub as unknown;
      if (typeof subject !== 'string' || subject.length === 0 || subject.length > MAX_SUBJECT_LENGTH)
        throw new AuthError('CLAIMS_INVALID', `sub must be a non-empty string of at most ${MAX_SUBJECT_LENGTH} characters`);
      // jose checks exp against the clock, not its range: an exp past what a Date can hold
      // (1e13 s, 1e400 = Infinity) would make an Invalid Date and a NaN expiry timer.
      const expiresAt = new Date((payload.exp as number) * 1000);
      if (!Number.isFinite(expiresAt.getTime())) throw new AuthError('CLAIMS_INVALID', 'exp is outside the range of representable dates');
      const policy = Policy.fromClaims(payload);
      return Object.freeze({ subject, expiresAt, policy });
    },
  };
}
