/**
 * Outbox Hub client SDK: one ESM source for Node (with `ws`) and browsers
 * (native WebSocket). Import as `outbox-hub/sdk`.
 *
 * Invariants:
 * - `publish` resolves only when the gateway confirms durability; a publish in
 *   flight during a reconnect is sent again with the same event id (the gateway
 *   deduplicates), so it is never silently dropped or doubled.
 * - Subscriptions survive reconnects; the token is refreshed through
 *   `getToken()` before it expires.
 * - Group deliveries are acked when the handler resolves and nacked when it
 *   throws.
 * - Lifecycle: connecting -> open <-> reconnecting -> (draining ->) closed, by
 *   `close()`, the `signal` or `drain()`; then every call rejects with `CLOSED`,
 *   `ready()` has settled and `closed()` resolves. A request's abort listener
 *   lives only as long as the request.
 */
export {
  createClient,
  type CauseRef,
  type ClientOptions,
  type ClientState,
  type Delivery,
  type DeliveryStream,
  type DrainOptions,
  type HubClient,
  type HubEvent,
  type PayloadOf,
  type PublishOptions,
  type SubscribeOptions,
  type TrimmedNotice,
  type Subscription,
  type TopicMap,
} from './client.js';
export { HubClientError, type ClientErrorCode } from './errors.js';
export { eventContext } from './subscriptions.js';
