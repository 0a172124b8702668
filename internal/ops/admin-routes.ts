import express, { type NextFunction, type Request, type Response } from 'express';
import { toWireEvent } from '../gateway/index.js';
import type { Logger } from '../log/index.js';
import { OpsError, idParam, intParam } from './params.js';
import type { OpsPorts } from './queries.js';
import { GroupReset, type ResetTarget } from './reset.js';

type Handler = (req: Request, res: Response) => Promise<void>;
/** The app's read or admin guard around a handler (token checks, errors to the error handler). */
type Guard = (h: Handler) => (req: Request, res: Response, next: NextFunction) => Promise<void>;

/** What the command line (and scripts) need beyond the dashboard's routes. */
export interface AdminRouteDeps {
  readonly partitions: number;
  readonly log: Logger;
  readonly read: Guard;
  readonly mutate: Guard;
  /** The ports once connected (throws `UNAVAILABLE` before). */
  readonly ports: () => OpsPorts;
}

/** ISO-8601 with a date, a time and a zone, as `Date#toISOString` writes it (and offsets such as `+02:00`). */
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{1,9})?)?(Z|[+-]\d\d:\d\d)$/;

/** An ISO-8601 time; anything `Date.parse` would guess at (local times, other formats) is refused. */
export function isoTime(value: unknown, name: string): Date {
  const at = typeof value === 'string' && ISO_TIME.test(value) ? new Date(value) : undefined;
  if (!at || Number.isNaN(at.getTime()))
    throw new OpsError('INVALID_PARAMETER', 400, `${name} must be an ISO-8601 time with a zone, such as 2026-11-25T10:42:00Z`, name);
  return at;
}

function resetTarget(value: unknown): ResetTarget {
  if (value === 'earliest' || value === 'latest') return value;
  if (typeof value === 'string' && ISO_TIME.test(value)) return isoTime(value, 'to');
  throw new OpsError('INVALID_PARAMETER', 400, "to must be 'earliest', 'latest' or an ISO-8601 time with a zone", 'to');
}

/**
 * Routes the command line needs beyond the dashboard's: time-based positions,
 * group resets and one group's dead letters. Registered by {@link OpsApp}
 * before its not-found handler; the same guards, parameter checks and error
 * rendering as every other route.
 */
export function registerAdminRoutes(app: express.Express, deps: AdminRouteDeps): void {
  const { read, mutate, ports, partitions, log } = deps;
  const resets = (): GroupReset => new GroupReset(ports(), partitions);
  const json = express.json({ limit: '4kb' });
  const body = (req: Request, res: Response, next: NextFunction): void =>
    json(req, res, (err?: unknown) =>
      next(err ? new OpsError('INVALID_PARAMETER', 400, 'the body must be a JSON object of at most 4 KB') : undefined),
    );

  // Per partition, the last sequence before `at`: SUBSCRIBE `from` these starts at `at` (one indexed lookup per partition).
  app.get(
    '/api/positions',
    read(async (req, res) => {
      const at = isoTime(req.query['at'], 'at');
      const seqs = await resets().positionsAt(at);
      res.json({ at: at.toISOString(), positions: Object.fromEntries(seqs.map((seq, p) => [String(p), seq])) });
    }),
  );

  app.post(
    '/api/groups/:group/reset',
    body,
    mutate(async (req, res) => {
      const group = idParam(req, 'group', 64);
      const given: unknown = req.body;
      if (given === null || typeof given !== 'object' || Array.isArray(given))
        throw new OpsError('INVALID_PARAMETER', 400, 'send a JSON object: {"to": "earliest" | "latest" | "<ISO time>", "force"?: true}');
      const { to, force = false } = given as { to?: unknown; force?: unknown };
      const target = resetTarget(to);
      if (typeof force !== 'boolean') throw new OpsError('INVALID_PARAMETER', 400, 'force must be true or false', 'force');
      const r = await resets().reset(group, target, force);
      if (r.outcome === 'absent') throw new OpsError('NOT_FOUND', 404, `no consumer group ${group}`);
      if (r.outcome === 'active') {
        const why =
          r.members.length > 0
            ? `group ${group} has consumers (gateways ${r.members.join(', ')})`
            : `partitions ${r.held.join(', ')} of group ${group} are still held by a gateway that is stopping or stopped (until its lease expires)`;
        throw new OpsError('GROUP_ACTIVE', 409, `${why}; stop them first, or force the reset`);
      }
      const label = target instanceof Date ? target.toISOString() : target;
      log.warn('consumer group reset', { group, to: label, force, fenced: r.partitions.filter((p) => p.fenced).map((p) => p.partition) });
      res.json({ group, to: label, forced: force, partitions: r.partitions });
    }),
  );

  // One group's dead letters, straight from the store (the overview lists only what the last sample saw).
  app.get(
    '/api/groups/:group/dead-letters',
    read(async (req, res) => {
      const group = idParam(req, 'group', 64);
      const limit = intParam(req, 'limit', 1, 500, 100);
      const { groupStore } = ports();
      if (!(await groupStore.getGroup(group))) throw new OpsError('NOT_FOUND', 404, `no consumer group ${group}`);
      const letters = await groupStore.listDeadLetters(group, limit);
      res.json({ group, letters: letters.map((d) => ({ ...d, event: toWireEvent(d.event) })) });
    }),
  );
}
