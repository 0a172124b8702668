/**
 * MongoDB adapter helpers shared by the outbox, event log and lease adapters.
 *
 * Invariants: capabilities are probed once per process against the real server
 * (never assumed from the URL); indexes are created by {@link ensureIndexes}
 * during start-up migrations, never from request paths.
 */
import { setTimeout as sleep } from 'node:timers/promises';
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
  type ChangeStream,
  type Collection,
  type Db,
  type Document,
  type IndexDescription,
} from 'mongodb';
import type { EnvReader } from '../config/index.js';
import { HubError } from '../errors/index.js';

/** What the connected server can do. */
export interface ServerCapabilities {
  /** Multi-document transactions (replica set or sharded cluster). */
  readonly transactions: boolean;
  /** `watch()` change streams on a collection. */
  readonly changeStreams: boolean;
  /** Change streams on a whole database (mongo-java-server accepts them but never delivers an event). */
  readonly databaseChangeStreams: boolean;
  /**
   * `mongodb`; or a server that speaks its wire protocol: `secantusdb` (WiredTiger, a
   * single-node replica set for tests), `ferretdb`, `mongo-java-server` (in memory, for tests).
   */
  readonly flavor: 'mongodb' | 'secantusdb' | 'ferretdb' | 'mongo-java-server';
  readonly version: string;
}

/**
 * Why a MongoDB helper failed. `UNKNOWN_HOST`: a host of the URL does not
 * resolve (a configuration error, not an outage); `CONNECT_FAILED`: the server
 * did not answer and no retry was asked for (or the wait was aborted).
 */
export type MongoHelperErrorCode = 'CONNECT_FAILED' | 'UNKNOWN_HOST';

/** Raised by {@link connectMongo}. */
export class MongoHelperError extends HubError<MongoHelperErrorCode> {}

/**
 * Client settings every binary uses: fail fast enough that callers get
 * `UNAVAILABLE` in seconds, and never wait forever on a server that stopped
 * answering (a frozen server keeps its sockets open).
 */
export const CLIENT_TIMEOUTS = Object.freeze({
  serverSelectionTimeoutMS: 5_000,
  connectTimeoutMS: 5_000,
  socketTimeoutMS: 30_000,
  heartbeatFrequencyMS: 2_000,
});

/** Options of {@link connectMongo}. */
export interface ConnectOptions {
  appName: string;
  signal?: AbortSignal;
  serverSelectionTimeoutMS?: number;
  maxPoolSize?: number;
  /** Keep trying (with backoff up to 5 s) while the server does not answer; told each failure. */
  retry?: { onRetry(err: unknown, attempt: number): void };
}

/**
 * Connects and verifies the server answers. Honours `signal` while connecting.
 * With `retry`, waits for an unreachable server for as long as it takes; an
 * unresolvable host fails at once with `UNKNOWN_HOST` either way.
 */
export async function connectMongo(url: string, options: ConnectOptions): Promise<MongoClient> {
  for (let attempt = 1; ; attempt++) {
    const client = new MongoClient(url, {
      appName: options.appName,
      ...CLIENT_TIMEOUTS,
      ...(options.serverSelectionTimeoutMS === undefined ? {} : { serverSelectionTimeoutMS: options.serverSelectionTimeoutMS }),
      ...(options.maxPoolSize === undefined ? {} : { maxPoolSize: options.maxPoolSize }),
    });
    const onAbort = (): void => void client.close();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await client.connect();
      await client.db('admin').command({ ping: 1 });
      return client;
    } catch (err) {
      await client.close().catch(() => undefined); // closing a client that never connected: nothing to lose
      const host = unknownHost(err);
      if (host) throw new MongoHelperError('UNKNOWN_HOST', `MONGO_URL names a host that does not resolve: ${host}`, { cause: err });
      if (!options.retry || options.signal?.aborted) {
        throw new MongoHelperError('CONNECT_FAILED', `cannot connect to MongoDB: ${(err as Error).message}`, { cause: err });
      }
      options.retry.onRetry(err, attempt);
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
    try {
      await sleep(Math.min(5_000, 250 * 2 ** Math.min(attempt, 5)), undefined, { signal: options.signal });
    } catch (err) {
      throw new MongoHelperError('CONNECT_FAILED', 'aborted while waiting for the database', { cause: err });
    }
  }
}

/** The host a server-selection failure could not resolve, if that is why it failed. */
function unknownHost(err: unknown): string | undefined {
  const servers = (err as { reason?: { servers?: Map<string, { error?: { cause?: { code?: unknown } } }> } }).reason?.servers;
  for (const [host, d] of servers ?? []) if (d.error?.cause?.code === 'ENOTFOUND') return host;
  return undefined;
}

/** Probes the server for transactions and change streams by trying them. */
export async function detectCapabilities(client: MongoClient, db: Db): Promise<ServerCapabilities> {
  const info = await db.admin().command({ buildInfo: 1 });
  let flavor: ServerCapabilities['flavor'] = 'ferretdbVersion' in info || 'ferretdb' in info ? 'ferretdb' : 'mongodb';
  if ('secantusVersion' in info) flavor = 'secantusdb';
  // mongo-java-server's buildInfo is only version/versionArray/maxBsonObjectSize, where mongod
  // always sends gitVersion; its serverStatus names the process "java". Asked only without
  // gitVersion: serverStatus needs a privilege an application user on MongoDB may lack (a
  // refusal there just means "not mongo-java-server").
  if (flavor === 'mongodb' && !('gitVersion' in info)) {
    const status = await db
      .admin()
      .command({ serverStatus: 1 })
      // A refusal (no privilege) just means "not mongo-java-server".
      .catch(() => undefined);
    if (status?.['process'] === 'java') flavor = 'mongo-java-server';
  }
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
    await session.endSession().catch(() => undefined); // the probe's session: nothing to lose
  }

  const changeStreams = await deliversInsert(() => probe.watch([], { maxAwaitTimeMS: 50 }), probe);
  const databaseChangeStreams =
    changeStreams &&
    (await deliversInsert(() => db.watch([{ $match: { 'ns.coll': probe.collectionName } }], { maxAwaitTimeMS: 50 }), probe));
  return Object.freeze({ transactions, changeStreams, databaseChangeStreams, flavor, version });
}

/** A MongoDB connection string, checked and taken apart. */
export interface MongoUrl {
  /** The URL with its password replaced by `***` (safe to log). */
  readonly redacted: string;
  readonly password: string | undefined;
  readonly hosts: readonly string[];
  readonly database: string | undefined;
}

const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252}))(?::(\d{1,5}))?$/;

/**
 * Parses a `mongodb://` or `mongodb+srv://` URL. Returns a problem (never
 * quoting the password) when the scheme, a host or a port is wrong.
 */
export function parseMongoUrl(url: string): MongoUrl | { problem: string } {
  const m = /^(mongodb(?:\+srv)?):\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?]*)(?:\/([^?]*))?(?:\?(.*))?$/.exec(url);
  if (!m) return { problem: 'must be a mongodb:// or mongodb+srv:// URL' };
  const [, scheme, user, password, hostList = '', db] = m;
  const redacted = password === undefined ? url : url.replace(`:${password}@`, ':***@');
  const hosts = hostList.split(',');
  for (const h of hosts) {
    const hm = HOST.exec(h);
    if (!hm) return { problem: `has an invalid host ${JSON.stringify(h)} (in ${redacted})` };
    const port = hm[1];
    if (port !== undefined && (Number(port) < 1 || Number(port) > 65_535))
      return { problem: `has an invalid port ${port} (in ${redacted})` };
    if (scheme === 'mongodb+srv' && port !== undefined) return { problem: `mongodb+srv URLs take no port (in ${redacted})` };
  }
  if (scheme === 'mongodb+srv' && hosts.length !== 1) return { problem: `mongodb+srv URLs take exactly one host (in ${redacted})` };
  if (user !== undefined && user === '') return { problem: `has an empty user name (in ${redacted})` };
  return {
    redacted,
    password: password === undefined ? undefined : decodeURIComponent(password),
    hosts,
    database: db ? decodeURIComponent(db) : undefined,
  };
}

/** True when a stream opened by `open` reports an insert into `probe` within a second. */
async function deliversInsert(open: () => ChangeStream, probe: Collection): Promise<boolean> {
  let stream: ChangeStream | undefined;
  try {
    stream = open();
    await stream.tryNext(); // opens the cursor before the insert
    await probe.insertOne({ probe: 'change stream' });
    for (let i = 0; i < 20; i++) {
      if (await stream.tryNext()) return true;
      await sleep(50);
    }
    return false;
  } catch {
    // Refused (no change streams on this server): the answer is no.
    return false;
  } finally {
    await stream?.close().catch(() => undefined); // a probe's stream: nothing to lose
  }
}

/** The database named in a MongoDB URL's path, if any. */
export function databaseFromUrl(url: string): string | undefined {
  const parsed = parseMongoUrl(url);
  return 'problem' in parsed ? undefined : parsed.database;
}

/** Every binary's database settings. */
export interface MongoSettings {
  readonly mongoUrl: string;
  readonly mongoDb: string;
  /** Values to scrub from logs (the password, if the URL has one). */
  readonly secrets: readonly string[];
}

/**
 * Reads MONGO_URL (required; checked for scheme, hosts and ports, and never
 * echoed with its password) and MONGO_DB (default: the URL's database, else
 * `outbox_hub`).
 */
export function mongoSettings(r: EnvReader): MongoSettings {
  const mongoUrl = r.string('MONGO_URL', { required: true, sensitive: true });
  const parsed = mongoUrl === '' ? undefined : parseMongoUrl(mongoUrl);
  if (parsed && 'problem' in parsed) r.fail('MONGO_URL', parsed.problem);
  const ok = parsed && !('problem' in parsed) ? parsed : undefined;
  const mongoDb = r.string('MONGO_DB', { default: ok?.database ?? 'outbox_hub', pattern: /^[A-Za-z0-9_-]{1,60}$/ });
  return { mongoUrl, mongoDb, secrets: ok?.password ? [ok.password] : [] };
}

/** Server error codes the adapters decide on (MongoDB's `error_codes.yml`). */
export const MONGO_ERROR = Object.freeze({
  NamespaceExists: 48,
  DuplicateKey: 11000,
});

/** A collection and the indexes it must have. */
export interface CollectionSpec {
  name: string;
  indexes: IndexDescription[];
}

/**
 * Idempotently creates each collection and its missing indexes (the start-up
 * migration step). Lists the database's collections once, however many specs.
 */
export async function ensureCollections(db: Db, specs: readonly CollectionSpec[]): Promise<void> {
  const existing = new Set((await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name));
  for (const spec of specs) {
    if (!existing.has(spec.name)) {
      try {
        await db.createCollection(spec.name);
      } catch (err) {
        // Another replica may have created it between our listing and our call.
        if (!(err instanceof MongoError && err.code === MONGO_ERROR.NamespaceExists)) throw err;
      }
    }
    if (spec.indexes.length > 0) await createMissingIndexes(db, spec.name, spec.indexes);
  }
}

/** Idempotently creates `indexes` on `collection` (and the collection itself). */
export async function ensureIndexes(db: Db, collection: string, indexes: IndexDescription[]): Promise<void> {
  await ensureCollections(db, [{ name: collection, indexes }]);
}

async function createMissingIndexes(db: Db, collection: string, indexes: IndexDescription[]): Promise<void> {
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
  if (err.code === MONGO_ERROR.DuplicateKey) return true;
  const writeErrors = (err as { writeErrors?: unknown }).writeErrors;
  if (Array.isArray(writeErrors)) return writeErrors.some((w: { code?: number }) => w.code === MONGO_ERROR.DuplicateKey);
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

/** Pause between two empty reads of a change stream (a server that ignores `maxAwaitTimeMS` answers at once). */
const CHANGE_STREAM_IDLE_MS = 25;

/**
 * Follows a change stream for as long as it is wanted: when the stream fails
 * (the server restarted, a primary stepped down, a cursor timed out), it is
 * reopened after a backoff of up to 5 s instead of being given up. Reads are
 * paced: after an empty read it waits {@link CHANGE_STREAM_IDLE_MS}, so a server
 * that answers an awaiting read at once (mongo-java-server) is not asked
 * thousands of times a second. Returns the stop function. `onError` is told
 * every failure (callers log it; the logger collapses repeats).
 */
export function followChangeStream<T extends Document>(
  open: () => ChangeStream<Document, T>,
  onChange: (change: T) => void,
  onError: (err: unknown) => void,
): () => Promise<void> {
  const stop = new AbortController();
  let current: ChangeStream<Document, T> | undefined;
  const loop = (async () => {
    let failures = 0;
    while (!stop.signal.aborted) {
      const stream = open();
      current = stream;
      try {
        while (!stop.signal.aborted) {
          const change = await stream.tryNext();
          if (change) {
            failures = 0;
            onChange(change);
          } else await sleep(CHANGE_STREAM_IDLE_MS, undefined, { signal: stop.signal });
        }
      } catch (err) {
        if (stop.signal.aborted) break;
        onError(err);
      }
      // Closing a stream that failed or is being stopped: nothing left to report.
      await stream.close().catch(() => undefined);
      // Rejects only when stopping, which ends the loop.
      await sleep(Math.min(5_000, 100 * 2 ** Math.min(failures++, 6)), undefined, { signal: stop.signal }).catch(() => undefined);
    }
  })();
  return async () => {
    stop.abort();
    await current?.close().catch(() => undefined); // ends a read in flight; the loop sees the stop
    await loop;
  };
}

export type { ClientSession, Db, MongoClient } from 'mongodb';
