import { readFileSync } from 'node:fs';
import type { EnvReader } from '../config/index.js';
import { isHubError } from '../errors/index.js';
import { RetentionPolicies } from './policy.js';

/**
 * Reads the deployment's retention policies, once, the same way in every binary:
 * `RETENTION` (the JSON itself) or `RETENTION_FILE` (a mounted file holding it; the
 * chart mounts one), not both. Neither: every event is kept. A policy that cannot be
 * applied is a configuration error naming the variable.
 */
export function readRetention(r: EnvReader): RetentionPolicies {
  const inline = r.string('RETENTION', { required: false });
  const file = r.string('RETENTION_FILE', { required: false });
  if (inline && file) {
    r.fail('RETENTION', 'set RETENTION or RETENTION_FILE, not both');
    return RetentionPolicies.keepAll();
  }
  const name = file ? 'RETENTION_FILE' : 'RETENTION';
  let text = inline;
  if (file) {
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      r.fail(name, `cannot read ${file}: ${(err as Error).message}`);
      return RetentionPolicies.keepAll();
    }
  }
  if (!text) return RetentionPolicies.keepAll();
  try {
    return RetentionPolicies.parse(text, file ? `${name} (${file})` : name);
  } catch (err) {
    if (!isHubError(err, 'INVALID_POLICY')) throw err;
    r.fail(name, err.message);
    return RetentionPolicies.keepAll();
  }
}
