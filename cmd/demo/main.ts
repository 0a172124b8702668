/** Demo binary: an order service using the outbox, and a live-events page using the SDK. */
import { DemoApp, loadDemoConfig } from '../../internal/demo/index.js';
import { loadConfigOrExit, runService } from '../../internal/lifecycle/index.js';
import { createLogger } from '../../internal/log/index.js';

const config = loadConfigOrExit(() => loadDemoConfig(process.env));
const log = createLogger({ level: config.logLevel, fields: { binary: 'demo' } });
await runService(new DemoApp(config, { log }), { log });
