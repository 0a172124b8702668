/** Ops binary: API and dashboard for backlog, leases, lag, dead letters and replay. Configuration: see loadOpsConfig. */
import { loadConfigOrExit, runService } from '../../internal/lifecycle/index.js';
import { createLogger } from '../../internal/log/index.js';
import { OpsApp, loadOpsConfig } from '../../internal/ops/index.js';
import { createRegistry } from '../../internal/telemetry/index.js';

const config = loadConfigOrExit(() => loadOpsConfig(process.env));
const log = createLogger({ level: config.logLevel, fields: { binary: 'ops' }, secrets: config.secrets });
const app = new OpsApp(config, { log, registry: createRegistry('ops'), onWedged: () => process.exit(1) });
await runService(app, { log, stopTimeoutMs: config.stopTimeoutMs });
