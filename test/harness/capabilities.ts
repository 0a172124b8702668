/**
 * Server capabilities as detected once by the global setup, for choosing which
 * tests can run. A test that needs a missing capability is skipped with a
 * message naming it; it is never passed silently.
 */
import type { ServerCapabilities } from '../../internal/mongo/index.js';
import { CAPABILITIES_ENV } from './server.js';

/** The capabilities the global setup detected. */
export function testCapabilities(env: NodeJS.ProcessEnv = process.env): ServerCapabilities {
  const raw = env[CAPABILITIES_ENV];
  if (!raw) throw new Error(`${CAPABILITIES_ENV} is not set: run tests through jest (globalSetup) or 'make test'`);
  return JSON.parse(raw) as ServerCapabilities;
}

/** `it`, or `it.skip` with a loud message when the server lacks `capability`. */
export function itWith(capability: 'transactions' | 'changeStreams'): jest.It {
  const caps = testCapabilities();
  if (caps[capability]) return it;
  const skip = ((name: string, ...rest: unknown[]) => {
    process.stderr.write(`\n  SKIPPED (server lacks ${capability}, ${caps.flavor} ${caps.version}): ${name}\n`);
    return (it.skip as (n: string, ...r: unknown[]) => void)(`[needs ${capability}] ${name}`, ...rest);
  }) as unknown as jest.It;
  return skip;
}
