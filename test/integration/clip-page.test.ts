/**
 * The clip page in headless Chromium, against a real daemon fed by the synthetic run: reached by
 * the link in the live page's harmful table, it draws one point per history point of the sample's
 * REST answer, one bar per query with the sums the API gives, the explain sentence, the motion
 * descriptors posted for the clip, and a note where the daemon has no preview (404). A screenshot
 * is saved for the README (docs/clip-page.png).
 */
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext } from 'playwright-core';
import { CHROMIUM, launchChromium } from '../helpers/browser.js';
import { streamSyntheticRun } from '../../daemon/cli/synthetic-run.js';
import { REPO_ROOT, startTestDaemon, tempDir } from '../helpers/daemon.js';
import { haveBinary } from '../helpers/system-binary.js';

const RUN = 'clip-run';
const CLIPS = 60;
const have = haveBinary(CHROMIUM, 'chromium');

interface Detail {
  id: string;
  score: number;
  weight: number;
  seen: number;
  queryIds: string[];
  querySums: number[];
  history: Array<{ seen: number; step: number; score: number; weight: number }>;
  explain: { group: string | null; sentence: string };
  motion: Record<string, unknown> | null;
}

describe.skipIf(!have)('clip page in headless Chromium', () => {
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  let browser: BrowserContext | undefined;
  const profile = tempDir('motive-chromium-clip-');
  let base = '';

  beforeAll(async () => {
    daemon = await startTestDaemon({ weights: { minSeen: 2, intervalMs: 200 } });
    base = `http://127.0.0.1:${daemon.httpPort}`;
    // 150 steps of 16 over 60 clips: each clip is seen about 40 times, more than a history holds.
    await streamSyntheticRun({ address: `127.0.0.1:${daemon.grpcPort}`, runId: RUN, clips: CLIPS, steps: 150, stepDelayMs: 5 });
    // Motion profiles for every clip, jitter rising as the score falls, so /explain finds it.
    const { samples } = (await (await fetch(`${base}/v1/runs/${RUN}/samples?order=harmful&limit=${CLIPS}`)).json()) as {
      samples: Array<{ id: string }>;
    };
    expect(samples.length).toBe(CLIPS);
    const profiles = samples.map(({ id }, rank) => ({
      id,
      hash: createHash('sha256').update(id).digest('hex'),
      path: `/clips/${id}.mp4`,
      profiledAtMs: 1_700_000_000_000,
      dynamic: true,
      dynamicDegree: 0.5,
      flowMean: 1 + (rank % 5) * 0.1,
      flowTop5: 3,
      jitter: 1 - rank / CLIPS,
      reversals: 0.1,
      staticFraction: 0.2,
      sceneCuts: 0,
      frames: 48,
    }));
    const res = await fetch(`${base}/v1/profiles`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ profiles }),
    });
    expect(res.status).toBe(200);
    browser = await launchChromium(profile.path);
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await daemon.cleanup();
    profile.remove();
  });

  it('opens from the live page and draws the history, the sums and the explain sentence the API gives', async () => {
    const page = await browser!.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${base}/?run=${RUN}`);
    await page.waitForSelector('#harmful tbody tr td.id a', { timeout: 15_000 });
    const link = page.locator('#harmful tbody tr td.id a').first();
    const id = await link.innerText();
    expect(await link.getAttribute('href')).toBe(`/runs/${RUN}/clips/${encodeURIComponent(id)}`);
    await link.click();
    await page.waitForFunction('document.body.dataset.ready === "yes"', undefined, { timeout: 15_000 });
    expect(page.url()).toBe(`${base}/runs/${RUN}/clips/${encodeURIComponent(id)}`);

    // The run has ended and no recompute changes scores: the API answers as the page was drawn.
    const detail = (await (await fetch(`${base}/v1/runs/${RUN}/samples/${encodeURIComponent(id)}`)).json()) as Detail;
    // A planted clip, down-weighted and so drawn less often: every batch that counted it is a point.
    expect(detail.seen).toBeGreaterThan(2);
    expect(detail.seen).toBeLessThanOrEqual(31);
    expect(detail.history.map((p) => p.seen)).toEqual(Array.from({ length: detail.seen }, (_, i) => i + 1));
    expect(detail.history.at(-1)!.weight).toBeLessThan(1);
    // The newest point is the sample's score now (the same Σ_j S_j over the same query count).
    expect(detail.history.at(-1)!.score).toBe(detail.score);

    const points = await page.evaluate<Array<[number, number]>>(
      `[...document.querySelectorAll('#score-chart circle.point')].map((c) => [Number(c.dataset.step), Number(c.dataset.value)])`,
    );
    expect(points).toEqual(detail.history.map((p) => [p.step, p.score]));
    const weights = await page.locator('#weight-chart circle.point').count();
    expect(weights).toBe(detail.history.length);

    const bars = await page.evaluate<Array<[string, number]>>(
      `[...document.querySelectorAll('#sums-chart rect.bar')].map((r) => [r.dataset.query, Number(r.dataset.value)])`,
    );
    expect(detail.queryIds.length).toBeGreaterThan(0);
    expect(bars).toEqual(detail.queryIds.map((q, j) => [q, detail.querySums[j]]));
    // A bar's side follows its sum's sign.
    const left = await page.evaluate<boolean[]>(
      `[...document.querySelectorAll('#sums-chart rect.bar')].map((r) => Number(r.getAttribute('x')) < 300)`,
    );
    expect(left).toEqual(detail.querySums.map((v) => v < 0));

    expect(await page.locator('#sentence').innerText()).toBe(detail.explain.sentence);
    expect(detail.explain.group).toBe('harmful');
    expect(detail.explain.sentence).toMatch(/Harmful clips have higher jitter/);
    expect(await page.locator('#motion tbody').innerText()).toContain('jitter');
    // This daemon has no preview of the clip: the page says how to make one.
    expect(await page.locator('#preview-note').innerText()).toMatch(/motive profile/);
    expect(errors).toEqual([]);

    const docs = join(REPO_ROOT, 'docs');
    mkdirSync(docs, { recursive: true });
    await page.screenshot({ path: join(docs, 'clip-page.png'), fullPage: true });
  }, 60_000);

  it('keeps at most 32 points of a clip seen more often, the first and the newest among them', async () => {
    const { samples } = (await (await fetch(`${base}/v1/runs/${RUN}/samples?order=helpful&limit=1`)).json()) as {
      samples: Array<{ id: string }>;
    };
    const detail = (await (await fetch(`${base}/v1/runs/${RUN}/samples/${encodeURIComponent(samples[0]!.id)}`)).json()) as Detail;
    expect(detail.seen).toBeGreaterThan(32);
    expect(detail.history.length).toBeLessThanOrEqual(32);
    expect(detail.history[0]!.seen).toBe(1);
    expect(detail.history.at(-1)!.seen).toBe(detail.seen);
    const page = await browser!.newPage();
    await page.goto(`${base}/runs/${RUN}/clips/${encodeURIComponent(detail.id)}`);
    await page.waitForFunction('document.body.dataset.ready === "yes"', undefined, { timeout: 15_000 });
    expect(await page.locator('#score-chart circle.point').count()).toBe(detail.history.length);
  });

  it('answers an unknown sample with MOTIVE_API_SAMPLE_NOT_FOUND, on the page too', async () => {
    const res = await fetch(`${base}/v1/runs/${RUN}/samples/no-such-clip`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { code: string }).code).toBe('MOTIVE_API_SAMPLE_NOT_FOUND');
    const page = await browser!.newPage();
    await page.goto(`${base}/runs/${RUN}/clips/no-such-clip`);
    await page.waitForFunction('document.body.dataset.ready === "error"', undefined, { timeout: 15_000 });
    expect(await page.locator('#status').innerText()).toMatch(/MOTIVE_API_SAMPLE_NOT_FOUND/);
  });
});
