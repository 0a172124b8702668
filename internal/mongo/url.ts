import type { EnvReader } from '../config/index.js';

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
