/**
 * The package's public entry points export exactly these runtime names: adding or removing
 * one is an API change to make on purpose (and to write in CHANGELOG.md), never by accident.
 * `outbox-hub` is internal/library, `outbox-hub/sdk` internal/sdk, `outbox-hub/consumer`
 * internal/consumer (package.json "exports").
 */
import * as consumer from '../internal/consumer/index.js';
import * as library from '../internal/library/index.js';
import type {
  AddOneOptions,
  AddOptions,
  MigrateOutboxOptions,
  Outbox,
  OutboxErrorCode,
  OutboxMessageInput,
  OutboxOptions,
  OutboxReceipt,
  ServerCapabilities,
} from '../internal/library/index.js';
import * as sdk from '../internal/sdk/index.js';

// The type names the documentation uses (checked by `make typecheck`, not at run time).
type _PublicTypes = [
  AddOneOptions,
  AddOptions,
  MigrateOutboxOptions,
  Outbox,
  OutboxErrorCode,
  OutboxMessageInput,
  OutboxOptions,
  OutboxReceipt,
  ServerCapabilities,
];

const names = (m: object): string[] => Object.keys(m).sort();

it('outbox-hub exports the writer API and nothing of the storage adapters or the layout', () => {
  expect(names(library)).toEqual([
    'DEFAULT_MAX_PAYLOAD_BYTES',
    'DEFAULT_PARTITIONS',
    'MAX_BATCH',
    'MAX_HEADERS',
    'MAX_ID_LENGTH',
    'MAX_KEY_LENGTH',
    'MAX_PARTITIONS',
    'MAX_PAYLOAD_DEPTH',
    'OutboxError',
    'createOutbox',
    'detectCapabilities',
    'isOutboxError',
    'isTransientError',
    'migrateOutbox',
    'newMessageId',
    'partitionOf',
  ]);
  const add: AddOneOptions = { idempotent: true, publisher: 'alice' };
  expect(add.idempotent).toBe(true);
});

it('outbox-hub/sdk exports the client, its error and the trace context of an event', () => {
  expect(names(sdk)).toEqual(['HubClientError', 'createClient', 'eventContext']);
});

it('outbox-hub/consumer exports the idempotent consumer, its store and the capability probe', () => {
  expect(names(consumer)).toEqual([
    'ConsumerError',
    'DEFAULT_CLAIM_MS',
    'DEFAULT_RETENTION_MS',
    'MongoDedupeStore',
    'detectCapabilities',
    'idempotent',
  ]);
});
