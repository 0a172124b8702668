/** Drainer binary: moves outbox messages into the event log. Configuration: see loadDrainerConfig. */
import { DrainerApp, loadDrainerConfig } from '../../internal/drainer/index.js';
import { loadConfigOrExit, runService } from '../../internal/lifecycle/index.js';
import { createLogger } from '../../internal/log/index.js';
import { createRegistry } from '../../internal/telemetry/index.js';

const config = loadConfigOrExit(() => loadDrainerConfig(process.env));
const log = createLogger({ level: config.logLevel, fields: { binary: 'drainer', member: config.member }, secrets: config.secrets });
const app = new DrainerApp(config, { log, registry: createRegistry('drainer'), onWedged: () => process.exit(1) });
await runService(app, { log, stopTimeoutMs: config.stopTimeoutMs });
