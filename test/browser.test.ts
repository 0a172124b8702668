/**
 * The demo page in real headless Chromium (Debian's chromium, installed by the
 * Makefile) using the SDK bundle against real gateways: it connects,
 * authenticates, receives events, and recovers after a gateway restart.
 */
import { mkdirSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { DemoApp, loadDemoConfig } from '../internal/demo/index.js';
import { createLogger } from '../internal/log/index.js';
import { useTestDb } from './harness/db.js';
import { TEST_SECRET, startDrainer, startGateway } from './harness/hub.js';
import { freePort } from './harness/server.js';

const t = useTestDb('browser');
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

let browser: Browser;
beforeAll(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-sync',
    ],
  });
});
afterAll(async () => browser?.close());

it('shows live events and recovers after the gateway restarts', async () => {
  const db = `${t.name}_demo`;
  const port = await freePort();
  // process.state compacted, as make dev runs it: the page's process table reads the snapshot.
  const retention = { RETENTION: JSON.stringify({ topics: [{ match: 'process.state', compact: true }] }), RETENTION_INTERVAL: '500ms' };
  const drainer = await startDrainer(t.url, db, retention);
  let gateway = await startGateway(t.url, db, { GATEWAY_PORT: String(port), ...retention });
  const demo = new DemoApp(
    loadDemoConfig({
      MONGO_URL: t.url,
      MONGO_DB: db,
      DEMO_PORT: '0',
      GATEWAY_PUBLIC_URL: `ws://127.0.0.1:${port}/ws`,
      JWT_SECRET: TEST_SECRET,
      OUTBOX_PARTITIONS: '4',
      DEMO_STATE_INTERVAL: '300ms',
      ...retention,
    }),
    { log: createLogger({ level: 'error' }) },
  );
  await demo.start();
  const page = await browser.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => void pageErrors.push(String(e)));
  try {
    await page.goto(`http://127.0.0.1:${demo.port}/`);
    await page.waitForSelector('#status[data-state="open"]', { timeout: 15_000 });

    await page.click('#order');
    await page.waitForFunction(() => document.querySelectorAll('#events li').length === 1, undefined, { timeout: 15_000 });
    expect(await page.textContent('#events li')).toMatch(/^orders\.created #\d+ \{"orderId":".+","item":"coffee","qty":1\}$/);

    await gateway.stop();
    await page.waitForSelector('#status[data-state="reconnecting"]', { timeout: 15_000 });
    gateway = await startGateway(t.url, db, { GATEWAY_PORT: String(port), ...retention });
    await page.waitForSelector('#status[data-state="open"]', { timeout: 15_000 });
    await page.click('#order');
    await page.waitForFunction(() => document.querySelectorAll('#events li').length === 2, undefined, { timeout: 15_000 });
    expect(await page.textContent('#count')).toBe('2');
    mkdirSync('test-artifacts', { recursive: true });
    await page.screenshot({ path: 'test-artifacts/demo-page.png', fullPage: true });
    expect(pageErrors).toEqual([]);

    // A page opened late shows every process of the compacted process.state topic at once
    // (from the snapshot), then their changes live.
    const late = await browser.newPage();
    try {
      await late.goto(`http://127.0.0.1:${demo.port}/`);
      await late.waitForFunction(() => document.querySelectorAll('#processes tbody tr').length === 3, undefined, { timeout: 15_000 });
      const beats = async (): Promise<number[]> =>
        late.$$eval('#processes tbody tr', (rows) => rows.map((r) => Number(r.children[2]?.textContent)));
      const before = await beats();
      expect(before.every((b) => b > 1)).toBe(true);
      await late.waitForFunction(
        (b0) =>
          Array.from(document.querySelectorAll('#processes tbody tr')).some((r, i) => Number(r.children[2]?.textContent) > (b0[i] ?? 0)),
        before,
        {
          timeout: 15_000,
        },
      );
      await late.screenshot({ path: 'test-artifacts/demo-page-processes.png', fullPage: true });
    } finally {
      await late.close();
    }

    // The order API refuses bad input with a typed error.
    const bad = await fetch(`http://127.0.0.1:${demo.port}/orders`, { method: 'POST', body: '{"item": 3}' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: 'BAD_ORDER' });
  } finally {
    await page.close();
    await demo.stop();
    await gateway.stop();
    await drainer.stop();
  }
});
