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
 *   throws. Lifecycle: connecting -> open <-> reconnecting -> closed (`close()`
 *   or the `signal`), after which every call rejects with `CLOSED`.
 */
export {
  HubClient,
  createClient,
  type ClientOptions,
  type ClientState,
  type Delivery,
  type HubEvent,
  type PayloadOf,
  type PublishOptions,
  type SubscribeOptions,
  type Subscription,
  type TopicMap,
} from './client.js';
export { HubClientError, type ClientErrorCode } from './errors.js';
