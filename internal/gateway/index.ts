/**
 * The gateway: WebSocket pub/sub over the event log (protocol v1, see
 * internal/protocol/PROTOCOL.md).
 *
 * Invariants:
 * - A connection must AUTH before the deadline; a token that expires without
 *   re-AUTH closes the connection (4002); a refreshed token re-checks every
 *   subscription.
 * - PUBLISH goes through the outbox and is acknowledged once durable.
 * - One log tail per process; fan-out is in memory through a topic trie.
 * - Consumer groups (the engine is internal/groups): a group member is one
 *   subscription of one connection; a SUBSCRIBE's OK precedes its first EVENT;
 *   a new group starts at `from`; ACK/NACK reach only the membership the
 *   delivery went to.
 * - PUBLISH payloads are validated before any write; ERR UNAVAILABLE (retry) is
 *   sent only for failures that may pass.
 * - Every timer and socket a connection or server creates is released on close.
 */
export { GATEWAY_PRESENCE_GROUP, GatewayApp } from './app.js';
export { GATEWAY_DEFAULTS, loadGatewayConfig, type GatewayConfig } from './config.js';
export { GatewayError } from './errors.js';
export {
  CLIENT_OPS,
  CloseCode,
  PROTOCOL,
  parseClientFrame,
  type ClientFrame,
  type ErrorCode,
  type ServerFrame,
  type StartFrom,
  type WireEvent,
} from '../protocol/index.js';
export { TokenBucket } from './tokens.js';
export { createGatewayMetrics, type GatewayMetrics } from './metrics.js';
export { toWire as toWireEvent } from './hub.js';
