/** `motive watch` against a streaming daemon, `motive demo` end to end, and the watch view's rendering. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../daemon/cli/cli.js';
import { applyEvent, liveUrl, renderWatch, type WatchState } from '../../daemon/cli/commands/watch.js';
import { streamSyntheticRun } from '../../daemon/cli/synthetic-run.js';
import { startTestDaemon } from '../helpers/daemon.js';

function captureIo(): { io: { out: (s: string) => void; err: (s: string) => void }; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return { io: { out: (s) => (out += s), err: (s) => (err += s) }, out: () => out, err: () => err };
}

describe('motive watch', () => {
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;

  beforeAll(async () => {
    daemon = await startTestDaemon({ weights: { minSeen: 2, intervalMs: 100 } });
  });

  afterAll(async () => {
    await daemon.cleanup();
  });

  it('prints the feed of a streaming run, one line per event', async () => {
    const stop = new AbortController();
    const streaming = streamSyntheticRun({
      address: `127.0.0.1:${daemon.grpcPort}`,
      runId: 'w1',
      steps: Infinity,
      stepDelayMs: 5,
      signal: stop.signal,
    });
    // The run exists before the watch starts, and the window leaves room for a loaded machine.
    for (let i = 0; i < 200 && daemon.store.run('w1') === undefined; i++) await new Promise((r) => setTimeout(r, 25));
    const c = captureIo();
    const code = await runCli(['watch', '--run', 'w1', '--url', `http://127.0.0.1:${daemon.httpPort}`, '--for', '3', '--plain'], c.io, {});
    stop.abort();
    await streaming;
    expect(c.err()).toBe('');
    expect(code).toBe(0);
    expect(c.out()).toMatch(/watching run w1|waiting for run w1/);
    expect(c.out()).toMatch(/batches \(\d+ sketches\), step \d+, [\d.]+ sketches\/s/);
    expect(c.out()).toMatch(/samples, step \d+, \d+ down-weighted; most harmful: /);
  });

  it('says why when the daemon is not there, and needs --run', async () => {
    const c = captureIo();
    expect(await runCli(['watch', '--run', 'x', '--url', 'http://127.0.0.1:1', '--for', '1'], c.io, {})).toBe(1);
    expect(c.err()).toMatch(/ECONNREFUSED/);
    const u = captureIo();
    expect(await runCli(['watch'], u.io, {})).toBe(2);
  });

  it('renders the full view from events', () => {
    const state: WatchState = { run: 'r', top: undefined, sketchesPerSec: 0, log: [] };
    expect(renderWatch(state)).toMatch(/waiting for the run/);
    const row = { fused: null, lastStep: 3, motion: null };
    applyEvent(state, {
      type: 'batches',
      run: 'r',
      t: 0,
      sketchesPerSec: 1234,
      batchesPerSec: 77,
      batches: 1,
      sketches: 16,
      bytes: 1024,
      lastStep: 3,
      commitMs: 2,
      fromMs: 0,
      toMs: 0,
    });
    applyEvent(state, {
      type: 'harmful',
      run: 'r',
      t: 0,
      version: 1,
      count: 1,
      threshold: 0.5,
      samples: [{ id: 'frozen-0001', score: -0.5, weight: 0.1, quarantined: false }],
    });
    applyEvent(state, {
      type: 'top',
      run: 'r',
      t: 0,
      samples: 2,
      batches: 2,
      sketches: 32,
      lastStep: 3,
      weightsVersion: 1,
      queryVersion: 1,
      downweighted: 1,
      quarantined: 0,
      harmful: [{ id: 'frozen-0001', score: -0.5, weight: 0.1, seen: 3, ...row }],
      helpful: [{ id: 'clip-0002', score: 0.5, weight: 1, seen: 3, ...row }],
      scoreHistogram: { min: -0.5, max: 0.5, counts: [1, 1] },
      weightHistogram: { le: [0.5, 1], counts: [1, 1] },
      sidecar: null,
    });
    const view = renderWatch(state);
    expect(view).toMatch(/1234 sketches\/s/);
    expect(view).toMatch(/1 {2}frozen-0001 +-0\.5000/);
    expect(view).toMatch(/harmful: frozen-0001/);
    expect(liveUrl('https://h:1', 'a b', 'top')).toBe('wss://h:1/v1/runs/a%20b/live?types=top');
  });
});

describe('motive demo', () => {
  it('runs a labelled synthetic run on a temp store and prints the page URL and the top harmful clips', async () => {
    const c = captureIo();
    const code = await runCli(['demo', '--source', 'synthetic', '--steps', '150', '--http-port', '0'], c.io, {});
    expect(c.err()).toBe('');
    expect(code).toBe(0);
    const out = c.out();
    expect(out).toMatch(/source: SYNTHETIC/);
    expect(out).toMatch(/live page: http:\/\/127\.0\.0\.1:\d+\/\?run=demo-synthetic/);
    expect(out).toMatch(/most harmful clips of demo-synthetic \(synthetic stream\)/);
    const rows = out
      .split('most harmful clips')[1]!
      .split('\n')
      .filter((l) => /^\s*\d+ {2}/.test(l));
    expect(rows.length).toBe(10);
    // The planted clips (named after their defect) lead the table.
    expect(rows.filter((l) => /camera-shake|frozen|flicker|scrambled/.test(l)).length).toBeGreaterThanOrEqual(8);
  });
});
