import { HubError } from '../errors/index.js';

/** Why a token was refused. Stable: clients and metrics use these. */
export const AUTH_ERROR_CODES = [
  'TOKEN_MISSING',
  'TOKEN_MALFORMED',
  'TOKEN_EXPIRED',
  'ALG_NOT_ALLOWED',
  'SIGNATURE_INVALID',
  'BAD_ISSUER',
  'BAD_AUDIENCE',
  'UNKNOWN_KEY',
  'CLAIMS_INVALID',
  'KEYS_UNAVAILABLE',
  'VERIFIER_CONFIG',
] as const;

/** One of {@link AUTH_ERROR_CODES}. */
export type AuthErrorCode = (typeof AUTH_ERROR_CODES)[number];

/** Raised by token verifiers and policy parsing. */
export class AuthError extends HubError<AuthErrorCode> {}
