/**
 * MongoDB adapter helpers shared by the outbox, event log and lease adapters.
 *
 * Invariants: capabilities are probed once per process against the real server
 * (never assumed from the URL); indexes are created by {@link ensureIndexes}
 * during start-up migrations, never from request paths.
 */
export { detectCapabilities, type ServerCapabilities } from './capabilities.js';
export { CLIENT_TIMEOUTS, connectMongo, type ConnectOptions } from './connect.js';
export {
  isDocumentRejectedError,
  isDuplicateKeyError,
  isSocketError,
  isStorageError,
  isTransientError,
  MONGO_ERROR,
  MongoHelperError,
  type MongoHelperErrorCode,
} from './errors.js';
export { ensureCollections, ensureIndexes, type CollectionSpec } from './indexes.js';
export { followChangeStream } from './streams.js';
export { databaseFromUrl, mongoSettings, parseMongoUrl, type MongoSettings, type MongoUrl } from './url.js';

export type { ClientSession, Db, MongoClient } from 'mongodb';
