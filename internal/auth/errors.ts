import { HubError } from '../errors/index.js';

/** Why a token was refused. Stable: clients and metrics use these. */
export type AuthErrorCode =
  | 'TOKEN_MISSING'
  | 'TOKEN_MALFORMED'
  | 'TOKEN_EXPIRED'
  | 'ALG_NOT_ALLOWED'
  | 'SIGNATURE_INVALID'
  | 'BAD_ISSUER'
  | 'BAD_AUDIENCE'
  | 'UNKNOWN_KEY'
  | 'CLAIMS_INVALID'
  | 'KEYS_UNAVAILABLE'
  | 'VERIFIER_CONFIG';

/** Raised by token verifiers and policy parsing. */
export class AuthError extends HubError<AuthErrorCode> {}
