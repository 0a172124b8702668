import { HubError } from '../errors/index.js';
import type { ErrorCode } from '../protocol/index.js';

/** Error raised inside the gateway; its code is the wire `ERR` code. */
export class GatewayError extends HubError<ErrorCode> {}
