/**
 * `motive report` on a profiled synthetic run: the progress steps, one self-contained HTML file
 * (no script, no http(s) reference), and in headless Chromium opened from a file:// URL with every
 * request that is not file: or data: refused: every embedded preview decodes (naturalWidth > 0),
 * the top clips are the daemon's, the histograms count every sample, and the evaluation table is
 * `motive eval`'s. A screenshot is saved for the README (docs/run-report.png).
 *
 * Needs Chromium and ffmpeg (Debian packages `chromium`, `ffmpeg`): skipped with a message without
 * them, except under CI=true.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext } from 'playwright-core';
import { CHROMIUM, launchChromium } from '../helpers/browser.js';
import { runCli } from '../../daemon/cli/cli.js';
import { streamSyntheticRun, syntheticClipIds } from '../../daemon/cli/synthetic-run.js';
import { REPO_ROOT, startTestDaemon, tempDir } from '../helpers/daemon.js';
import { haveBinary } from '../helpers/system-binary.js';
import { ffmpegAvailable } from '../fixtures/synthetic-clips.js';
import { kindOfId, writeLavfiClip } from '../fixtures/lavfi-clips.js';

const RUN = 'report-run';
const CLIPS = 16;
const TOP = 6;
const have = haveBinary(CHROMIUM, 'chromium');
const HAVE_FFMPEG = ffmpegAvailable();
if (!HAVE_FFMPEG) {
  if (process.env['CI'] === 'true') throw new Error('ffmpeg is missing: install the Debian package "ffmpeg" (CI must not skip)');
  console.warn('skipping the run report test: ffmpeg not found (install the Debian package "ffmpeg")');
}

describe.skipIf(!have || !HAVE_FFMPEG)('motive report', () => {
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  let browser: BrowserContext | undefined;
  let url: string;
  const profile = tempDir('motive-chromium-');
  const work = tempDir('motive-report-');
  const io = { out: [] as string[], err: [] as string[] };
  const cliIo = { out: (s: string) => void io.out.push(s), err: (s: string) => void io.err.push(s) };

  beforeAll(async () => {
    daemon = await startTestDaemon({ weights: { minSeen: 2, intervalMs: 200 } });
    url = `http://127.0.0.1:${daemon.httpPort}`;
    const { ids, harmful } = syntheticClipIds(CLIPS, 0.25);
    const lines: string[] = [];
    const labels = ['id,label'];
    for (const [i, id] of ids.entries()) {
      const path = join(work.path, `${id}.mp4`);
      await writeLavfiClip(path, kindOfId(id), { width: 160, height: 90, fps: 12, seconds: 2, variant: i });
      lines.push(JSON.stringify({ id, path }));
      labels.push(`${id},${harmful.has(id) ? kindOfId(id) : 'clean'}`);
    }
    writeFileSync(join(work.path, 'clips.jsonl'), `${lines.join('\n')}\n`);
    writeFileSync(join(work.path, 'labels.csv'), `${labels.join('\n')}\n`);
    expect(
      await runCli(['profile', join(work.path, 'clips.jsonl'), '--jobs', '2', '--url', url], cliIo, { MOTIVE_PROGRESS: 'lines' }),
    ).toBe(0);
    await streamSyntheticRun({ address: `127.0.0.1:${daemon.grpcPort}`, runId: RUN, clips: CLIPS, harmfulFraction: 0.25, steps: 120 });
    // A weights recompute after the last batch (every 200 ms).
    const version = daemon.store.run(RUN)!.weightsVersion;
    for (let i = 0; i < 100 && daemon.store.run(RUN)!.weightsVersion === version; i++) await new Promise((r) => setTimeout(r, 50));
    browser = await launchChromium(profile.path, 1280);
  }, 420_000);

  afterAll(async () => {
    await browser?.close();
    await daemon.cleanup();
    profile.remove();
    work.remove();
  });

  it('writes one self-contained file that opens from file:// with the network refused', { timeout: 120_000 }, async () => {
    const out = join(work.path, 'report.html');
    io.err.length = 0;
    const args = ['report', '--run', RUN, '--out', out, '--labels', join(work.path, 'labels.csv'), '--top', String(TOP), '--url', url];
    expect(await runCli(args, cliIo, { MOTIVE_PROGRESS: 'lines' })).toBe(0);
    const progress = io.err.join('');
    for (let s = 1; s <= 6; s++) expect(progress).toContain(`report: [${s}/6]`);
    expect(progress).toMatch(/previews \d+\/\d+/);
    const html = readFileSync(out, 'utf8');
    expect(html).not.toMatch(/https?:/i);
    expect(html).not.toMatch(/<script/i);

    const blocked: string[] = [];
    await browser!.route('**/*', async (route) => {
      const u = route.request().url();
      if (u.startsWith('file:') || u.startsWith('data:')) await route.continue();
      else {
        blocked.push(u);
        await route.abort();
      }
    });
    const page = await browser!.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(pathToFileURL(out).href, { waitUntil: 'load' });
    const images = `[...document.querySelectorAll('img')]`;
    await page.waitForFunction(`${images}.every((i) => i.complete)`, undefined, { timeout: 10_000 });
    const decoded = await page.evaluate<Array<[string, number]>>(`${images}.map((i) => [i.alt, i.naturalWidth])`);
    // Every clip of the pool is profiled: three previews per card, each decoded.
    expect(decoded.length).toBe(2 * TOP * 3);
    for (const [alt, width] of decoded) expect(width, alt).toBeGreaterThan(0);
    expect(blocked).toEqual([]);
    expect(errors).toEqual([]);

    // The top clips are the daemon's, in its order.
    const restIds = async (order: string): Promise<string[]> =>
      (
        (await (await fetch(`${url}/v1/runs/${RUN}/samples?order=${order}&limit=${TOP}`)).json()) as { samples: Array<{ id: string }> }
      ).samples.map((s) => s.id);
    expect(await page.evaluate(`[...document.querySelectorAll('#harmful .clip')].map((c) => c.dataset.id)`)).toEqual(
      await restIds('harmful'),
    );
    expect(await page.evaluate(`[...document.querySelectorAll('#helpful .clip')].map((c) => c.dataset.id)`)).toEqual(
      await restIds('helpful'),
    );
    // Both histograms count every sample of the run.
    const sums = await page.evaluate<number[]>(
      `[...document.querySelectorAll('svg.hist')].map((s) => [...s.querySelectorAll('rect')].reduce((a, r) => a + Number(r.dataset.count), 0))`,
    );
    expect(sums).toEqual([CLIPS, CLIPS]);
    // The evaluation table is motive eval's (same labels, reference, top and seed).
    const evalIo = { lines: [] as string[], out: (s: string) => void evalIo.lines.push(s), err: () => undefined };
    expect(await runCli(['eval', '--run', RUN, '--labels', join(work.path, 'labels.csv'), '--json', '--url', url], evalIo, {})).toBe(0);
    const ev = JSON.parse(evalIo.lines.join('')) as { pooled: { auc: number; n: number } };
    const pooledRow = await page.evaluate<string[]>(
      `[...document.querySelectorAll('#evaluation tbody tr')].map((tr) => tr.innerText).find((t) => t.startsWith('all non-reference')).split('\\t')`,
    );
    expect(Number(pooledRow[1])).toBe(ev.pooled.n);
    expect(Number(pooledRow[3])).toBeCloseTo(ev.pooled.auc, 4);
    expect(await page.locator('#summary').innerText()).toContain(String(CLIPS));
    expect(await page.locator('#config').innerText()).toContain('scoreMode');

    const docs = join(REPO_ROOT, 'docs');
    mkdirSync(docs, { recursive: true });
    // The top of the report (summary, distributions, the top clips) keeps the image small.
    await page.screenshot({ path: join(docs, 'run-report.png'), fullPage: true, clip: { x: 0, y: 0, width: 1280, height: 1500 } });
  });
});
