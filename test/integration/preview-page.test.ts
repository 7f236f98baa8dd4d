/**
 * The live page's preview cells in headless Chromium: clips of a streaming run are profiled
 * (`motive profile`, lavfi clips), the harmful / helpful tables show each profiled clip's strip
 * thumbnail, loaded (naturalWidth > 0), and hovering one opens the popover whose animated WebP and
 * flow heat map load too. A screenshot with the popover open is saved for the README
 * (docs/live-page-previews.png).
 *
 * Needs Chromium and ffmpeg (Debian packages `chromium`, `ffmpeg`): skipped with a message without
 * them, except under CI=true.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext } from 'playwright-core';
import { CHROMIUM, launchChromium } from '../helpers/browser.js';
import { runCli } from '../../daemon/cli/cli.js';
import { streamSyntheticRun, syntheticClipIds } from '../../daemon/cli/synthetic-run.js';
import { REPO_ROOT, startTestDaemon, tempDir } from '../helpers/daemon.js';
import { haveBinary } from '../helpers/system-binary.js';
import { ffmpegAvailable } from '../fixtures/synthetic-clips.js';
import { kindOfId, writeLavfiClip } from '../fixtures/lavfi-clips.js';

const RUN = 'preview-run';
const CLIPS = 16;
const have = haveBinary(CHROMIUM, 'chromium');
const HAVE_FFMPEG = ffmpegAvailable();
if (!HAVE_FFMPEG) {
  if (process.env['CI'] === 'true') throw new Error('ffmpeg is missing: install the Debian package "ffmpeg" (CI must not skip)');
  console.warn('skipping the preview page test: ffmpeg not found (install the Debian package "ffmpeg")');
}

describe.skipIf(!have || !HAVE_FFMPEG)('live page previews in headless Chromium', () => {
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  let browser: BrowserContext | undefined;
  const profile = tempDir('motive-chromium-');
  const clipsDir = tempDir('motive-page-clips-');
  const stop = new AbortController();
  let streaming: Promise<unknown> = Promise.resolve();

  beforeAll(async () => {
    daemon = await startTestDaemon({ weights: { minSeen: 2, intervalMs: 200 } });
    const { ids } = syntheticClipIds(CLIPS, 0.25);
    // Every clip of the pool, so both tables show only profiled clips.
    const manifest = join(clipsDir.path, 'clips.jsonl');
    const lines: string[] = [];
    for (const [i, id] of ids.entries()) {
      const path = join(clipsDir.path, `${id}.mp4`);
      await writeLavfiClip(path, kindOfId(id), { width: 160, height: 90, fps: 12, seconds: 2, variant: i });
      lines.push(JSON.stringify({ id, path }));
    }
    writeFileSync(manifest, `${lines.join('\n')}\n`);
    const io = { out: () => undefined, err: () => undefined };
    const code = await runCli(['profile', manifest, '--jobs', '2', '--url', `http://127.0.0.1:${daemon.httpPort}`], io, {
      MOTIVE_PROGRESS: 'lines',
    });
    expect(code).toBe(0);
    streaming = streamSyntheticRun({
      address: `127.0.0.1:${daemon.grpcPort}`,
      runId: RUN,
      clips: CLIPS,
      harmfulFraction: 0.25,
      steps: Infinity,
      stepDelayMs: 10,
      signal: stop.signal,
    });
    for (let i = 0; i < 100 && daemon.store.run(RUN) === undefined; i++) await new Promise((r) => setTimeout(r, 50));
    browser = await launchChromium(profile.path);
  }, 420_000);

  afterAll(async () => {
    stop.abort();
    await browser?.close();
    await streaming.catch(() => undefined);
    await daemon.cleanup();
    profile.remove();
    clipsDir.remove();
  });

  it('shows a loaded thumbnail per profiled clip, plays the animation on hover, and saves a screenshot', { timeout: 120_000 }, async () => {
    const page = await browser!.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${daemon.httpPort}/?run=${RUN}`);
    await page.waitForSelector('#status.live', { timeout: 10_000 });
    const loaded = (selector: string) => `[...document.querySelectorAll(${JSON.stringify(selector)})]`;
    // Browser-side checks are written as expressions: this project compiles without the DOM types.
    await page.waitForFunction(`${loaded('#harmful tbody tr')}.length === 10 && ${loaded('#helpful tbody tr')}.length === 10`, undefined, {
      timeout: 20_000,
    });
    const allLoaded = `${loaded('#harmful img.thumb, #helpful img.thumb')}.every((i) => i.complete && i.naturalWidth > 0)`;
    await page.waitForFunction(allLoaded, undefined, { timeout: 20_000 });
    // Every row is a profiled clip, so every row has a thumbnail, visible.
    expect(await page.locator('#harmful img.thumb').count()).toBe(10);
    expect(await page.locator('#helpful img.thumb').count()).toBe(10);
    expect(await page.locator('#harmful th.motion').first().isVisible()).toBe(true);
    // Let the planted harmful clips rise to the top, then open the first one's preview.
    await page.waitForFunction(`${loaded('#harmful tbody tr')}.slice(0, 4).every((tr) => !tr.dataset.id.startsWith('clip-'))`, undefined, {
      timeout: 30_000,
    });
    // Hovering opens the popover; a click pins it, so the table's updates under the pointer leave it.
    await page.locator('#harmful img.thumb').first().hover();
    await page.waitForSelector('#preview-pop.open', { timeout: 5_000 });
    await page.locator('#harmful img.thumb').first().click();
    await page.waitForFunction(
      `document.body.dataset.pinned && document.querySelector('#preview-pop').dataset.id === document.body.dataset.pinned`,
      undefined,
      { timeout: 5_000 },
    );
    const popLoaded = `${loaded('#preview-pop img')}.length === 3 && ${loaded('#preview-pop img')}.every((i) => i.complete && i.naturalWidth > 0)`;
    await page.waitForFunction(popLoaded, undefined, { timeout: 10_000 });
    const sizes = await page.evaluate<Array<[string, number, number]>>(
      `${loaded('#preview-pop img')}.map((i) => [i.className, i.naturalWidth, i.naturalHeight])`,
    );
    // 160 × 90 clips: the animation is not upscaled (short side 90 < 96), the heat map has the
    // analysis size (short side min(128, 90), both sides multiples of 8), the strip 6 frames 64 px high.
    expect(sizes).toEqual([
      ['anim', 160, 90],
      ['flow', 160, 88],
      ['strip', 6 * 114, 64],
    ]);
    expect(errors).toEqual([]);
    await page.waitForTimeout(400);
    const docs = join(REPO_ROOT, 'docs');
    mkdirSync(docs, { recursive: true });
    await page.screenshot({ path: join(docs, 'live-page-previews.png'), fullPage: true });
  });
});
