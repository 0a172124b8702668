import { HubError } from '../errors/index.js';

/** Why a lease store could not be opened. */
export type LeaseErrorCode = 'BACKEND_UNAVAILABLE';

/** Raised by `openLeaseStore`. */
export class LeaseError extends HubError<LeaseErrorCode> {}
