/** Ops binary: API and dashboard for backlog, leases, lag, dead letters and replay. Configuration: see loadOpsConfig. */
import { loadConfigOrExit, runService } from '../../internal/lifecycle/index.js';
import { createLogger } from '../../internal/log/index.js';
import { OpsApp, loadOpsConfig } from '../../internal/ops/index.js';
import { createRegistry } from '../../internal/telemetry/index.js';

const config = loadConfigOrExit(() => loadOpsConfig(process.env));
const log = createLogger({ level: config.logLevel, fields: { binary: 'ops' } });
await runService(new OpsApp(config, { log, registry: createRegistry('ops') }), { log, stopTimeoutMs: config.stopTimeoutMs });
