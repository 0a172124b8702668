/**
 * Authentication (JWT through jose) and topic permissions.
 *
 * Invariants: accepted algorithms come from configuration, never from the
 * token; `exp` and `sub` (a non-empty string) are required; clock tolerance is bounded; policies are
 * compiled once per authentication and deny wins. Errors carry a stable
 * {@link AuthErrorCode}.
 */
export { AUTH_ERROR_CODES, AuthError, type AuthErrorCode } from './errors.js';
export { MAX_RULES, Policy, type Action } from './policy.js';
export {
  MAX_CLOCK_TOLERANCE_S,
  MAX_SUBJECT_LENGTH,
  MAX_TOKEN_LENGTH,
  SUPPORTED_ALGORITHMS,
  createJoseVerifier,
  type Algorithm,
  type JoseVerifierOptions,
  type KeySource,
  type Principal,
  type TokenVerifier,
} from './verifier.js';
