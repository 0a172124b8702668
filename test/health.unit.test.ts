/** Readiness conditions tell listeners the moment they stop holding (what lets a gateway answer waiting publishes at once). */
import { Health } from '../internal/health/index.js';
import { createLogger } from '../internal/log/index.js';

it('calls a failure listener once per transition from holding to failing, until removed', () => {
  const health = new Health({ log: createLogger({ level: 'error' }) });
  const database = health.condition('database', { ok: true });
  const calls: string[] = [];
  const off = health.onFail('database', () => calls.push('down'));
  health.onFail('other', () => calls.push('other'));
  database.set(true);
  database.set(false, 'ping failed');
  database.set(false, 'ping failed again');
  expect(calls).toEqual(['down']);
  expect(health.isOk('database')).toBe(false);
  database.set(true);
  database.set(false);
  expect(calls).toEqual(['down', 'down']);
  off();
  database.set(true);
  database.set(false);
  expect(calls).toEqual(['down', 'down']);
});
