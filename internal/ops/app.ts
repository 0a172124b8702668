import { timingSafeEqual } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import { isHubError } from '../errors/index.js';
import type { Condition, Health } from '../health/index.js';
import type { LogEvent } from '../eventlog/index.js';
import { toWireEvent } from '../gateway/index.js';
import { closerFor, repeat, type Service } from '../lifecycle/index.js';
import type { Logger } from '../log/index.js';
import { HubProcess } from '../runtime/index.js';
import { Counter, healthAnswer, type Registry } from '../telemetry/index.js';
import type { OpsConfig } from './config.js';
import { dashboardPage, dashboardScript, dashboardStyles } from './page.js';
import { OpsError, idParam, intParam, queryProblem, topicParam } from './params.js';
import { isTransientError } from '../mongo/index.js';
import { OpsMetrics } from './metrics.js';
import { OpsQueries, type Snapshot } from './queries.js';
import { registerAdminRoutes } from './admin-routes.js';

type Handler = (req: Request, res: Response) => Promise<void>;

/** The sampler waits at least this many times as long as its last sample took (at most a fifth of the time sampling). */
const SAMPLE_SPACING = 4;

/** A stall report its reader has not refreshed for this long belongs to a reader that is gone. */
const STALL_REPORT_STALE_MS = 5 * 60_000;

/**
 * Headers on every response. Nothing on the page is inline, so scripts, styles
 * and fetches come from this origin only; nothing may frame it or sniff types.
 */
const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
  'cache-control': 'no-store',
});

function tokenMatches(header: string | undefined, ...tokens: Array<string | undefined>): boolean {
  const given = Buffer.from(/^Bearer (.+)$/.exec(header ?? '')?.[1] ?? '');
  return tokens.some((t) => {
    if (t === undefined) return false;
    const want = Buffer.from(t);
    return want.length === given.length && timingSafeEqual(want, given);
  });
}

/**
 * The ops process: JSON API, dashboard page, `/metrics`, `/healthz`, `/readyz`
 * on one port. Reads may require OPS_READ_TOKEN; mutations always need
 * OPS_ADMIN_TOKEN (disabled without one). Lifecycle: start (connect, migrate,
 * sample heads, listen) -> stop (stop sampling, close server, close client).
 */
export class OpsApp implements Service {
  readonly #cfg: OpsConfig;
  readonly #log: Logger;
  readonly #registry: Registry;
  readonly #process: HubProcess;
  #server: Server | undefined;
  #queries: OpsQueries | undefined;
  readonly #health: Health;
  readonly #metrics: OpsMetrics;
  /** Readiness: the last API request that touched the database succeeded. */
  readonly #answering: Condition;

  constructor(cfg: OpsConfig, deps: { log: Logger; registry: Registry; onWedged?: (reasons: string[]) => void }) {
    this.#cfg = cfg;
    this.#log = deps.log;
    this.#registry = deps.registry;
    this.#process = new HubProcess({ ...deps, wedgeExitMs: cfg.wedgeExitMs });
    this.#health = this.#process.health;
    this.#answering = this.#health.condition('queries', { ok: true });
    this.#metrics = new OpsMetrics(deps.registry);
  }

  /** Readiness and liveness as `/readyz` and `/healthz` report them. */
  get health(): Health {
    return this.#health;
  }

  get port(): number {
    return (this.#server?.address() as AddressInfo | null)?.port ?? 0;
  }

  async start(): Promise<void> {
    const cfg = this.#cfg;
    const p = this.#process;
    // Ops records no spans of its own; it honours the variables like every binary (a future span is exported).
    await p.startTracing(cfg.tracing, { binary: 'ops' });
    // Listen first: /healthz and /readyz answer while the database is still unreachable.
    const app = this.#routes(() => {
      if (!this.#queries) throw new OpsError('UNAVAILABLE', 503, 'connecting to the database; retry');
      return this.#queries;
    });
    const server = app.listen(cfg.port, cfg.host);
    const closeServer = closerFor(server);
    p.onStop('HTTP server', closeServer);
    await new Promise<void>((resolve, reject) => {
      server.once('listening', () => resolve());
      server.once('error', reject);
    });
    this.#server = server;
    p.watchHealth();
    this.#log.info('ops listening', { url: `http://${cfg.host}:${this.port}/` });
    const ports = await p.openPorts(cfg, { appName: 'outbox-hub-ops' });
    const q = new OpsQueries(ports, cfg.partitions);
    const sample = async (): Promise<void> => this.#metrics.record(await q.sample());
    await sample().catch((err: unknown) => this.#log.warn('sample failed', { err }));
    const samplerDog = this.#health.watchdog('sampler', 120_000);
    const sampler = repeat(
      cfg.sampleIntervalMs,
      p.signal,
      () => {
        samplerDog.beat();
        return sample();
      },
      (err) => {
        this.#health.dbError('sampler');
        this.#log.warn('sample failed', { err });
      },
      // On a server that scans for range reads (FerretDB) a sample can take seconds: it never takes over the database.
      { spacing: SAMPLE_SPACING },
    );
    p.onStop('sampler', () => sampler);
    this.#queries = q;
    p.started();
  }

  stop(): Promise<void> {
    return this.#process.stop();
  }

  #routes(q: () => OpsQueries): express.Express {
    const cfg = this.#cfg;
    const app = express();
    app.disable('x-powered-by');
    app.set('query parser', 'simple');
    const requests = new Counter({
      name: 'ops_http_requests_total',
      help: 'Ops API requests by route and status',
      labelNames: ['route', 'status'],
      registers: [this.#registry],
    });
    app.use((req, res, next) => {
      res.on('finish', () =>
        requests.inc({ route: (req.route as { path?: string } | undefined)?.path ?? 'unmatched', status: String(res.statusCode) }),
      );
      res.set(SECURITY_HEADERS);
      next();
    });
    // Before any route: a malformed path or a bracketed or repeated parameter never reaches a handler.
    app.use((req, _res, next) => {
      const problem = queryProblem(req.originalUrl);
      next(problem ? new OpsError('INVALID_PARAMETER', 400, problem.message, problem.parameter) : undefined);
    });

    const read = (h: Handler) => async (req: Request, res: Response, next: NextFunction) => {
      try {
        if (cfg.readToken && !tokenMatches(req.headers.authorization, cfg.readToken, cfg.adminToken))
          throw new OpsError('UNAUTHORIZED', 401, 'a read token is required');
        await h(req, res);
        this.#answering.set(true);
      } catch (err) {
        next(err);
      }
    };
    const mutate = (h: Handler) => async (req: Request, res: Response, next: NextFunction) => {
      try {
        if (!cfg.adminToken) throw new OpsError('MUTATIONS_DISABLED', 403, 'set OPS_ADMIN_TOKEN to enable mutations');
        if (!tokenMatches(req.headers.authorization, cfg.adminToken))
          throw new OpsError('UNAUTHORIZED', 401, 'the admin token is required');
        await h(req, res);
      } catch (err) {
        next(err);
      }
    };
    const wire = (e: LogEvent | null) => (e ? toWireEvent(e) : null);

    const answer = (path: '/healthz' | '/readyz') => (_req: Request, res: Response) => {
      const a = healthAnswer(path, this.#health);
      res.status(a.status).type('text').send(a.body);
    };
    app.get('/healthz', answer('/healthz'));
    app.get('/readyz', answer('/readyz'));
    app.get('/metrics', async (_req, res) => void res.type(this.#registry.contentType).send(await this.#registry.metrics()));
    app.get('/', (_req, res) => void res.type('html').send(dashboardPage()));
    app.get('/assets/dashboard.js', (_req, res) => void res.type('text/javascript').send(dashboardScript()));
    app.get('/assets/dashboard.css', (_req, res) => void res.type('text/css').send(dashboardStyles()));

    const sampled = (): Snapshot => {
      const snap = q().snapshot;
      if (!snap) throw new OpsError('UNAVAILABLE', 503, 'no sample taken yet; retry');
      return snap;
    };
    app.get(
      '/api/overview',
      read(async (_req, res) => {
        const snap = sampled();
        const partitions = q().partitions(snap);
        const [backlog, leases, stalls] = await Promise.all([q().backlog(), q().leases(), q().stalls(STALL_REPORT_STALE_MS)]);
        res.json({
          at: new Date(),
          sampledAt: snap.at,
          partitions: cfg.partitions,
          backlog: {
            pending: backlog.reduce((n, b) => n + b.pending, 0),
            dead: backlog.reduce((n, b) => n + b.dead, 0),
            oldestPendingAgeSeconds: Math.max(0, ...backlog.map((b) => b.oldestPendingAgeSeconds)),
            byPartition: backlog,
          },
          leases,
          lapsed: snap.lapsed,
          unownedPartitions: leases.partitions.filter((p) => !p.live).map((p) => p.partition),
          throughputPerSecond: Number(partitions.reduce((n, p) => n + p.ratePerSecond, 0).toFixed(2)),
          partitionHeads: partitions,
          stalledPartitions: stalls.filter((r) => r.gap !== null),
          retention: snap.retention,
          groupDeadLetters: snap.groups.reduce((n, g) => n + g.deadLetters, 0),
          groups: snap.groups.map(({ partitions: _rows, ...g }) => g),
        });
      }),
    );
    app.get(
      '/api/backlog',
      read(async (_req, res) => void res.json(await q().backlog())),
    );
    app.get(
      '/api/leases',
      read(async (_req, res) => void res.json(await q().leases())),
    );
    app.get(
      '/api/retention',
      read((_req, res) => {
        const snap = sampled();
        res.json({
          sampledAt: snap.at,
          policies: cfg.retention.describe(),
          partitions: snap.retention,
          topics: snap.topics,
          // Whether the bytes and topic figures are exact (every partition counted up to its last event, nothing pro-rated).
          exact: snap.retention.every((r) => r.exact),
        });
        return Promise.resolve();
      }),
    );
    app.get(
      '/api/partitions',
      read((_req, res) => {
        res.json(q().partitions(sampled()));
        return Promise.resolve();
      }),
    );
    app.get(
      '/api/groups',
      read((_req, res) => {
        const snap = sampled();
        res.json({ sampledAt: snap.at, groups: snap.groups });
        return Promise.resolve();
      }),
    );
    app.delete(
      '/api/groups/:group',
      mutate(async (req, res) => {
        const group = idParam(req, 'group', 64);
        const outcome = await q().deleteGroup(group);
        if (outcome === 'active') throw new OpsError('GROUP_ACTIVE', 409, `group ${group} has consumers; stop them first`);
        if (outcome === 'absent') throw new OpsError('NOT_FOUND', 404, 'no such group');
        this.#metrics.forgetGroup(group);
        this.#log.warn('consumer group deleted', { group });
        res.json({ deleted: group });
      }),
    );
    app.get(
      '/api/events/latest',
      read(async (req, res) => {
        const topic = topicParam(req) as string;
        const event = await q().latest(topic, idParam(req, 'key'));
        if (!event) throw new OpsError('NOT_FOUND', 404, `no event for ${topic} with that key`);
        res.json(wire(event));
      }),
    );
    app.get(
      '/api/events',
      read(async (req, res) => {
        const partition = intParam(req, 'partition', 0, cfg.partitions - 1);
        const events = await q().range(
          partition,
          intParam(req, 'after', 0, Number.MAX_SAFE_INTEGER, 0),
          intParam(req, 'limit', 1, 1000, 100),
          topicParam(req, 'topic', false),
        );
        res.json(events.map(wire));
      }),
    );
    app.get(
      '/api/events/export',
      read(async (req, res) => {
        const partition = intParam(req, 'partition', 0, cfg.partitions - 1);
        let after = intParam(req, 'after', 0, Number.MAX_SAFE_INTEGER, 0);
        const topic = topicParam(req, 'topic', false);
        const until = intParam(req, 'until', 0, Number.MAX_SAFE_INTEGER, await q().head(partition));
        let closed = false;
        req.on('close', () => (closed = true));
        res.status(200).type('application/x-ndjson');
        // Streams in pages of 500: memory stays flat whatever the range.
        while (!closed && after < until) {
          const page = await q().range(partition, after, 500, topic);
          const inRange = page.filter((e) => e.seq <= until);
          for (const e of inRange) {
            if (!res.write(`${JSON.stringify(wire(e))}\n`)) await new Promise((r) => res.once('drain', r));
          }
          if (page.length < 500 || inRange.length < page.length) break;
          after = (page.at(-1) as LogEvent).seq;
        }
        res.end();
      }),
    );
    // After the fixed /api/events/* paths, which these would otherwise shadow.
    app.get(
      '/api/events/:id',
      read(async (req, res) => {
        const event = await q().event(idParam(req, 'id', 128));
        if (!event) throw new OpsError('NOT_FOUND', 404, 'no such event');
        res.json(wire(event));
      }),
    );
    app.get(
      '/api/events/:id/caused',
      read(async (req, res) => {
        const id = idParam(req, 'id', 128);
        const limit = intParam(req, 'limit', 1, 1000, 100);
        const events = await q().causedBy(id, limit);
        res.json({ id, events: events.map(wire) });
      }),
    );
    app.get(
      '/api/dead-letters',
      read(async (req, res) => {
        const limit = intParam(req, 'limit', 1, 500, 50);
        // Only groups the last sample saw dead letters in: the cost follows the dead letters, not the groups.
        const groups = sampled().groups.filter((g) => g.deadLetters > 0);
        const byGroup = await Promise.all(
          groups.map(async (g) => ({
            group: g.group,
            letters: (await q().deadGroupLetters(g.group, limit)).map((d) => ({ ...d, event: wire(d.event) })),
          })),
        );
        res.json({ outbox: await q().deadOutbox(limit), groups: byGroup.filter((g) => g.letters.length > 0) });
      }),
    );
    app.get(
      '/api/outbox/:id',
      read(async (req, res) => {
        const m = await q().outboxMessage(idParam(req, 'id', 128));
        if (!m) throw new OpsError('NOT_FOUND', 404, 'no such message');
        res.json(m);
      }),
    );
    app.post(
      '/api/outbox/:id/requeue',
      mutate(async (req, res) => {
        const id = idParam(req, 'id', 128);
        if ((await q().requeue(id)) === 0) throw new OpsError('NOT_FOUND', 404, 'no dead message with that id');
        this.#log.info('dead message requeued', { id });
        res.json({ requeued: id });
      }),
    );
    app.post(
      '/api/groups/:group/dead-letters/:eventId/replay',
      mutate(async (req, res) => {
        const group = idParam(req, 'group', 64);
        const eventId = idParam(req, 'eventId', 128);
        if (!(await q().replay(group, eventId))) throw new OpsError('NOT_FOUND', 404, 'no dead letter with that id in that group');
        this.#log.info('dead letter replay requested', { group, eventId });
        res.json({ replaying: eventId, group });
      }),
    );
    app.get(
      '/api/stalls',
      read(async (_req, res) => void res.json(await q().stalls(STALL_REPORT_STALE_MS))),
    );
    app.post(
      '/api/partitions/:partition/repair',
      mutate(async (req, res) => {
        const partition = intParam(req, 'partition', 0, cfg.partitions - 1);
        const after = intParam(req, 'after', 0, Number.MAX_SAFE_INTEGER);
        let gap;
        try {
          gap = await q().repairGap(partition, after, cfg.repairMinAgeMs);
        } catch (err) {
          if (isHubError(err, 'GAP_TOO_RECENT')) throw new OpsError('GAP_TOO_RECENT', 409, err.message);
          throw err;
        }
        if (!gap) throw new OpsError('NOT_FOUND', 404, `partition ${partition} has no missing sequence after ${after}`);
        this.#log.warn('sequence hole filled with gap events', { partition, from: gap.from, to: gap.to });
        res.json({ partition, filled: { from: gap.from, to: gap.to } });
      }),
    );
    registerAdminRoutes(app, { partitions: cfg.partitions, log: this.#log, read, mutate, ports: () => q().ports });
    app.use((_req: Request, _res: Response, next: NextFunction) => next(new OpsError('NOT_FOUND', 404, 'no such route')));
    app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof OpsError) {
        res.status(err.status).json({ error: err.code, message: err.message, ...(err.parameter ? { parameter: err.parameter } : {}) });
        return;
      }
      // The router decoding a malformed %-escape in a path parameter.
      if (err instanceof URIError) {
        res.status(400).json({ error: 'INVALID_PARAMETER', message: 'malformed percent-encoding in the path' });
        return;
      }
      this.#log.error('ops request failed', { err });
      // Only what may pass is reported as worth a retry.
      if (isTransientError(err)) {
        this.#health.dbError('api');
        this.#answering.set(false, 'API requests are failing: the database did not answer');
        res.status(503).json({ error: 'UNAVAILABLE', message: 'the database did not answer; retry' });
      } else res.status(500).json({ error: 'INTERNAL', message: 'the request failed' });
    });
    return app;
  }
}
