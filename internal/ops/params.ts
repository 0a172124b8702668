import type { Request } from 'express';
import { HubError } from '../errors/index.js';
import { topicProblem } from '../topic/index.js';

/** Why an ops request was refused. */
export type OpsErrorCode =
  | 'INVALID_PARAMETER'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'MUTATIONS_DISABLED'
  | 'UNAVAILABLE'
  | 'GAP_TOO_RECENT'
  | 'GROUP_ACTIVE'
  | 'INTERNAL';

/** Error raised by the ops API; rendered as `{ error: code, message, parameter? }`. */
export class OpsError extends HubError<OpsErrorCode> {
  readonly status: number;
  readonly parameter: string | undefined;

  constructor(code: OpsErrorCode, status: number, message: string, parameter?: string) {
    super(code, message);
    this.status = status;
    this.parameter = parameter;
  }
}

/**
 * Why a request target is refused before routing, or undefined: a path segment
 * that is not valid percent-encoding, or a query parameter whose name has
 * brackets (`a[$gt]=1`, an object in other parsers) or that appears twice (an
 * array). Checked on the raw target, so no parser setting can let one through.
 */
export function queryProblem(target: string): { message: string; parameter?: string } | undefined {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  for (const segment of path.split('/')) {
    try {
      decodeURIComponent(segment);
    } catch {
      // decodeURIComponent throws only URIError: the segment is not valid percent-encoding.
      return { message: 'malformed percent-encoding in the path' };
    }
  }
  if (q < 0) return undefined;
  const seen = new Set<string>();
  for (const name of new URLSearchParams(target.slice(q + 1)).keys()) {
    if (/[[\]]/.test(name)) {
      // Named by what precedes the brackets (`partition` for `partition[$gt]`), as the handler knows it.
      const base = name.split('[')[0] || name;
      return { message: `parameter ${JSON.stringify(name)} has brackets`, parameter: base };
    }
    if (seen.has(name)) return { message: `parameter ${name} is repeated`, parameter: name };
    seen.add(name);
  }
  return undefined;
}

function raw(req: Request, name: string): string | undefined {
  const v = (req.query as Record<string, unknown>)[name] ?? (req.params as Record<string, unknown>)[name];
  if (v === undefined) return undefined;
  // Only plain strings reach queries: arrays and objects (e.g. `a[$gt]=1`) are refused.
  if (typeof v !== 'string') throw new OpsError('INVALID_PARAMETER', 400, `${name} must be a single plain value`, name);
  return v;
}

/** A whole number in [min, max]; `fallback` when absent (required when no fallback). */
export function intParam(req: Request, name: string, min: number, max: number, fallback?: number): number {
  const v = raw(req, name);
  if (v === undefined) {
    if (fallback === undefined) throw new OpsError('INVALID_PARAMETER', 400, `${name} is required`, name);
    return fallback;
  }
  if (!/^\d{1,15}$/.test(v) || Number(v) < min || Number(v) > max) {
    throw new OpsError('INVALID_PARAMETER', 400, `${name} must be a whole number from ${min} to ${max}`, name);
  }
  return Number(v);
}

/** A valid topic name. */
export function topicParam(req: Request, name = 'topic', required = true): string | undefined {
  const v = raw(req, name);
  if (v === undefined) {
    if (required) throw new OpsError('INVALID_PARAMETER', 400, `${name} is required`, name);
    return undefined;
  }
  const problem = topicProblem(v);
  if (problem !== undefined) throw new OpsError('INVALID_PARAMETER', 400, problem, name);
  return v;
}

/** A bounded identifier-like string (ids, keys, group names). */
export function idParam(req: Request, name: string, max = 512): string {
  const v = raw(req, name);
  if (v === undefined || v.length === 0 || v.length > max)
    throw new OpsError('INVALID_PARAMETER', 400, `${name} must be 1-${max} characters`, name);
  return v;
}
