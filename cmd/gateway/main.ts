/** Gateway binary: WebSocket pub/sub over the event log. Configuration: see loadGatewayConfig. */
import { GatewayApp, loadGatewayConfig } from '../../internal/gateway/index.js';
import { loadConfigOrExit, runService } from '../../internal/lifecycle/index.js';
import { createLogger } from '../../internal/log/index.js';
import { createRegistry } from '../../internal/telemetry/index.js';

const config = loadConfigOrExit(() => loadGatewayConfig(process.env));
const log = createLogger({ level: config.logLevel, fields: { binary: 'gateway', member: config.instance }, secrets: config.secrets });
const app = new GatewayApp(config, { log, registry: createRegistry('gateway'), onWedged: () => process.exit(1) });
await runService(app, { log, stopTimeoutMs: config.stopTimeoutMs });
