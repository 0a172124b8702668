/**
 * MongoDB adapter helpers shared by the outbox, event log and lease adapters.
 *
 * Invariants: capabilities are probed once per process against the real server
 * (never assumed from the URL); indexes are created by {@link ensureIndexes}
 * during start-up migrations, never from request paths.
 */
import {
  MongoClient,
  MongoClientClosedError,
  MongoError,
  MongoErrorLabel,
  MongoNetworkError,
  MongoNotConnectedError,
  MongoServerError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
  MongoWriteConcernError,
  type Db,
  type IndexDescription,
} from 'mongodb';
import type { EnvReader } from '../config/index.js';
import { HubError } from '../errors/index.js';

/** What the connected server can do. */
export interface ServerCapabilities {
  /** Multi-document transactions (replica set or sharded cluster). */
  readonly transactions: boolean;
  /** `watch()` change streams. */
  readonly changeStreams: boolean;
  /** `mongodb` or `ferretdb`. */
  readonly flavor: 'mongodb' | 'ferretdb';
  readonly version: string;
}

/** Why a MongoDB helper failed. */
export type MongoHelperErrorCode = 'CONNECT_FAILED';

/** Raised by {@link connectMongo}. */
export class MongoHelperError extends HubError<MongoHelperErrorCode> {}

/** Connects and verifies the server answers. Honours `signal` while connecting. */
export async function connectMongo(
  url: string,
  options: { appName: string; signal?: AbortSignal; serverSelectionTimeoutMS?: number },
): Promise<MongoClient> {
  const client = new MongoClient(url, {
    appName: options.appName,
    serverSelectionTimeoutMS: options.serverSelectionTimeoutMS ?? 10_000,
  });
  const onAbort = (): void => void client.close();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await client.connect();
    await client.db('admin').command({ ping: 1 });
    return client;
  } catch (err) {
    await client.close().catch(() => undefined);
    throw new MongoHelperError('CONNECT_FAILED', `cannot connect to MongoDB: ${(err as Error).message}`, { cause: err });
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
}

/** Probes the server for transactions and change streams by trying them. */
export async function detectCapabilities(client: MongoClient, db: Db): Promise<ServerCapabilities> {
  const info = await db.admin().command({ buildInfo: 1 });
  const flavor = 'ferretdbVersion' in info || 'ferretdb' in info ? 'ferretdb' : 'mongodb';
  const version = String(info['version'] ?? 'unknown');
  const probe = db.collection('_hub_capability_probe');

  let transactions = false;
  const session = client.startSession();
  try {
    session.startTransaction();
    await probe.insertOne({ probe: 'transaction' }, { session });
    await session.abortTransaction();
    transactions = true;
  } catch {
    // Refused: that is the answer (transactions stays false).
  } finally {
    await session.endSession().catch(() => undefined);
  }

  let changeStreams = false;
  const stream = probe.watch([], { maxAwaitTimeMS: 1 });
  try {
    await stream.tryNext();
    changeStreams = true;
  } catch {
    // Refused: that is the answer (changeStreams stays false).
  } finally {
    await stream.close().catch(() => undefined);
  }
  return Object.freeze({ transactions, changeStreams, flavor, version });
}

/** The database named in a MongoDB URL's path, if any. */
export function databaseFromUrl(url: string): string | undefined {
  const m = /^mongodb(?:\+srv)?:\/\/[^/]+\/([^?]+)/.exec(url);
  return m?.[1] ? decodeURIComponent(m[1]) : undefined;
}

/** Reads MONGO_URL (required) and MONGO_DB (default: the URL's database, else `outbox_hub`): every binary's database settings. */
export function mongoSettings(r: EnvReader): { mongoUrl: string; mongoDb: string } {
  const mongoUrl = r.string('MONGO_URL', { pattern: /^mongodb(\+srv)?:\/\// });
  const mongoDb = r.string('MONGO_DB', { default: databaseFromUrl(mongoUrl) ?? 'outbox_hub', pattern: /^[A-Za-z0-9_-]{1,60}$/ });
  return { mongoUrl, mongoDb };
}

/** Idempotently creates `indexes` on `collection` (the start-up migration step). */
export async function ensureIndexes(db: Db, collection: string, indexes: IndexDescription[]): Promise<void> {
  const existing = await db.listCollections({ name: collection }, { nameOnly: true }).toArray();
  if (existing.length === 0) {
    try {
      await db.createCollection(collection);
    } catch (err) {
      // Another replica may have created it between our check and our call.
      if (!(err instanceof MongoError && err.code === 48)) throw err;
    }
  }
  // Create only what is missing: cheaper, and FerretDB 1.x drops the connection when
  // asked to re-create several existing indexes at once.
  const c = db.collection(collection);
  const missing = async (): Promise<IndexDescription[]> => {
    const names = new Set((await c.listIndexes().toArray()).map((i: { name?: unknown }) => String(i.name)));
    return indexes.filter((i) => i.name === undefined || !names.has(i.name));
  };
  const todo = await missing();
  if (todo.length === 0) return;
  try {
    await c.createIndexes(todo);
  } catch (err) {
    // A concurrent replica may have won the race; fine if everything now exists.
    if ((await missing()).length > 0) throw err;
  }
}

/** True for a duplicate-key write error (E11000), including inside a bulk write. */
export function isDuplicateKeyError(err: unknown): boolean {
  if (!(err instanceof MongoError)) return false;
  if (err.code === 11000) return true;
  const writeErrors = (err as { writeErrors?: unknown }).writeErrors;
  if (Array.isArray(writeErrors)) return writeErrors.some((w: { code?: number }) => w.code === 11000);
  return false;
}

/**
 * Server error codes that mean "not now" rather than "never": the server (or the
 * replica set) is unreachable, stepping down, shutting down, busy or timed out.
 * The driver's own retryable-code list, plus timeouts and write conflicts.
 */
const TRANSIENT_SERVER_CODES: ReadonlySet<number> = new Set([
  6, // HostUnreachable
  7, // HostNotFound
  24, // LockTimeout
  46, // LockBusy
  50, // MaxTimeMSExpired
  64, // WriteConcernFailed (timed out waiting for replication)
  89, // NetworkTimeout
  91, // ShutdownInProgress
  112, // WriteConflict
  133, // FailedToSatisfyReadPreference
  134, // ReadConcernMajorityNotAvailableYet
  189, // PrimarySteppedDown
  262, // ExceededTimeLimit
  9001, // SocketException
  10107, // NotWritablePrimary
  11600, // InterruptedAtShutdown
  11602, // InterruptedDueToReplStateChange
  13435, // NotPrimaryNoSecondaryOk
  13436, // NotPrimaryOrSecondary
  63, // StaleShardVersion
  150, // StaleEpoch
  13388, // StaleConfig
]);

/**
 * Server error codes that refuse the document itself (its keys, values, size or
 * shape): sending it again can never succeed.
 */
const DOCUMENT_REJECTED_CODES: ReadonlySet<number> = new Set([
  2, // BadValue (FerretDB: $-prefixed or dotted keys, NaN/Infinity)
  15, // Overflow (nesting too deep)
  22, // InvalidBSON
  52, // DollarPrefixedFieldName
  56, // EmptyFieldName
  57, // DottedFieldName
  121, // DocumentValidationFailure
  10334, // BSONObjectTooLarge
  17280, // KeyTooLong
]);

/**
 * True for failures worth retrying unchanged: network errors and timeouts,
 * server selection failures, primary step-downs and the other transient server
 * codes above, and errors the driver labels retryable. Decided by error class,
 * label and server code only. A server error that refuses the request itself
 * (bad document, not authorised, unknown command, ...) is not transient: no
 * retry can make it succeed.
 */
export function isTransientError(err: unknown): boolean {
  if (!(err instanceof MongoError)) return false;
  if (
    err.hasErrorLabel(MongoErrorLabel.TransientTransactionError) ||
    err.hasErrorLabel(MongoErrorLabel.RetryableWriteError) ||
    err.hasErrorLabel(MongoErrorLabel.RetryableError) ||
    err.hasErrorLabel(MongoErrorLabel.SystemOverloadedError)
  )
    return true;
  // MongoNetworkError covers its timeout and pool-cleared subclasses.
  if (err instanceof MongoNetworkError || err instanceof MongoServerSelectionError || err instanceof MongoNotConnectedError) return true;
  // A closed client: this process is stopping; the work is retried by whoever continues it.
  if (err instanceof MongoTopologyClosedError || err instanceof MongoClientClosedError) return true;
  if (err instanceof MongoServerError || err instanceof MongoWriteConcernError)
    return typeof err.code === 'number' && TRANSIENT_SERVER_CODES.has(err.code);
  return false;
}

/** True when the server refused a written document itself (see {@link DOCUMENT_REJECTED_CODES}). */
export function isDocumentRejectedError(err: unknown): boolean {
  return err instanceof MongoServerError && typeof err.code === 'number' && DOCUMENT_REJECTED_CODES.has(err.code);
}

export type { ClientSession, Db, MongoClient } from 'mongodb';
