/**
 * `motive eval` against a real daemon fed clips whose scores are known: one query q = e₀ and each
 * clip seen once with the sketch (t, √(1 − t²), 0, …), so under the cosine score mode its score is
 * lr · t. The t of each label are drawn around a different mean and rounded to a 0.05 grid, so many
 * clips tie. Every figure is checked against plain code here: the O(n²) pair count on the scores the
 * REST API answers, the sorted top 10 %, and the mean of GET /weights; then every error path.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../daemon/cli/cli.js';
import { MotiveClient } from '../../trainer-hooks/ts/index.js';
import { rng } from '../helpers/reference.js';
import { startTestDaemon, tempDir } from '../helpers/daemon.js';

const DIM = 8;
const RUN = 'eval-run';
const LR = 0.01;
/** Label, clips, mean t: jitter sits well below clean, frozen a little, the decoy not at all. */
const GROUPS: Array<[string, number, number]> = [
  ['clean', 80, 0.3],
  ['jitter', 30, -0.2],
  ['frozen', 20, 0.15],
  ['decoy', 20, 0.3],
  ['unlabelled', 20, 0],
];

interface Figures {
  label: string;
  n: number;
  unscored: number;
  auc: number | null;
  ci: [number, number] | null;
  precisionAtTop: number | null;
  baseRate: number | null;
  meanWeight: number | null;
}
interface Report {
  run: string;
  samples: number;
  signal: string;
  harmful: string;
  signals: string[];
  weightsVersion: number;
  labels: Figures[];
  pooled: Figures;
  reference: Figures;
  ranked: number;
  top: number;
  bootstrap: { replicates: number; seed: number; level: number };
  missing: { count: number; ids: string[] };
}

function capture(): { io: { out: (s: string) => void; err: (s: string) => void }; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return { io: { out: (s) => (out += s), err: (s) => (err += s) }, out: () => out, err: () => err };
}

/** P(h_a < h_r) + ½ P(h_a = h_r), over every pair. */
function pairAuc(a: number[], r: number[]): number {
  let wins = 0;
  for (const x of a) for (const y of r) wins += x < y ? 1 : x === y ? 0.5 : 0;
  return wins / (a.length * r.length);
}

describe('motive eval on a run with known scores', () => {
  const dir = tempDir('motive-eval-');
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  let url: string;
  const label = new Map<string, string>();
  const known = new Map<string, number>();
  /** Each labelled clip's sample view: the score and any other per-sample signal. */
  const views = new Map<string, Record<string, unknown>>();
  let weights: Record<string, number> = {};
  const labelsFile = join(dir.path, 'labels.csv');

  beforeAll(async () => {
    // maxRecomputeShare 1: the last recompute follows the last commit within intervalMs, not a
    // gap stretched by the host's load, so the weights read below are the final ones.
    daemon = await startTestDaemon({ weights: { intervalMs: 10, minSeen: 1, maxRecomputeShare: 1 } });
    url = `http://127.0.0.1:${daemon.httpPort}`;
    const r = rng(11);
    const ids: string[] = [];
    for (const [name, n, mean] of GROUPS) {
      for (let i = 0; i < n; i++) {
        const id = `${name}-${String(i).padStart(2, '0')}`;
        const t = Math.round(Math.max(-0.95, Math.min(0.95, mean + 0.35 * r.normal())) * 20) / 20;
        ids.push(id);
        known.set(id, LR * t);
        if (name !== 'unlabelled') label.set(id, name);
      }
    }
    const c = new MotiveClient({ dtype: 'float32', address: `127.0.0.1:${daemon.grpcPort}`, runId: RUN, dim: DIM });
    await c.connect();
    const q = new Float32Array(DIM);
    q[0] = 1;
    c.setQueries(1, 0, ['q'], q);
    const order = [...ids].sort(() => r.uniform() - 0.5);
    for (let b = 0; b < order.length; b += 16) {
      const batch = order.slice(b, b + 16);
      const values = new Float32Array(batch.length * DIM);
      batch.forEach((id, i) => {
        const t = known.get(id)! / LR;
        values[i * DIM] = t;
        values[i * DIM + 1] = Math.sqrt(1 - t * t);
      });
      await c.send(b / 16 + 1, LR, batch, values);
    }
    await c.flush();
    c.close();
    // Weights are recomputed shortly after the last commit: wait until they are settled.
    let previous = '';
    for (;;) {
      const now = JSON.stringify(await (await fetch(`${url}/v1/runs/${RUN}/weights`)).json());
      if (now === previous) break;
      previous = now;
      await new Promise((res) => setTimeout(res, 300));
    }
    weights = (JSON.parse(previous) as { weights: Record<string, number> }).weights;
    for (const id of label.keys())
      views.set(id, (await (await fetch(`${url}/v1/runs/${RUN}/samples/${encodeURIComponent(id)}`)).json()) as Record<string, unknown>);
    // A header with an extra column in front, quoted fields, CRLF and a blank line.
    const rows = [...label].map(([id, l], i) => `"note ${i}",${id},"${l}"`);
    writeFileSync(labelsFile, ['comment,id,label', ...rows.slice(0, 40), '', ...rows.slice(40)].join('\r\n') + '\r\n');
  });

  afterAll(async () => {
    await daemon.cleanup();
    dir.remove();
  });

  /** The harm value of a clip under `signal` from its REST view (check: higher = more harmful). */
  const harmOf = (id: string, signal: string): number => {
    const v = views.get(id)![signal] as number;
    return signal === 'check' ? -v : v;
  };

  function expectFigures(report: Report, signal: string): void {
    const labelled = [...label.keys()];
    const of = (l: string): number[] => labelled.filter((id) => label.get(id) === l).map((id) => harmOf(id, signal));
    const clean = of('clean');
    const others = labelled.filter((id) => label.get(id) !== 'clean').map((id) => harmOf(id, signal));
    expect(report.labels.map((g) => g.label).sort()).toEqual(['decoy', 'frozen', 'jitter']);
    for (const g of report.labels) {
      expect(g.n).toBe(of(g.label).length);
      expect(g.unscored).toBe(0);
      expect(g.auc).toBeCloseTo(pairAuc(of(g.label), clean), 12);
    }
    expect(report.pooled.label).toBe('all non-reference');
    expect(report.pooled.n).toBe(others.length);
    expect(report.pooled.auc).toBeCloseTo(pairAuc(others, clean), 12);
    expect(report.reference).toMatchObject({ label: 'clean', n: clean.length, unscored: 0, auc: null, ci: null });

    for (const g of [...report.labels, report.pooled]) {
      const [lo, hi] = g.ci!;
      expect(lo).toBeLessThanOrEqual(g.auc!);
      expect(hi).toBeGreaterThanOrEqual(g.auc!);
      expect(hi - lo).toBeGreaterThan(0);
    }

    // Top 10 %: ceil(0.1 · N) of the labelled clips ranked most harmful first, ties by id.
    const ranked = [...labelled].sort((a, b) => harmOf(a, signal) - harmOf(b, signal) || (a < b ? -1 : 1));
    const k = Math.ceil(ranked.length / 10);
    const top = ranked.slice(0, k);
    expect(report.ranked).toBe(ranked.length);
    expect(report.top).toBe(k);
    for (const g of [...report.labels, report.reference]) {
      expect(g.precisionAtTop).toBeCloseTo(top.filter((id) => label.get(id) === g.label).length / k, 12);
      expect(g.baseRate).toBeCloseTo(of(g.label).length / ranked.length, 12);
    }
    expect(report.pooled.precisionAtTop).toBeCloseTo(top.filter((id) => label.get(id) !== 'clean').length / k, 12);
  }

  it('the run holds the known scores, with ties, and pushed weights that differ between clips', () => {
    for (const [id, s] of known) if (label.has(id)) expect(views.get(id)!['score'] as number).toBeCloseTo(s, 7);
    const scores = [...label.keys()].map((id) => views.get(id)!['score'] as number);
    expect(new Set(scores).size).toBeLessThan(scores.length / 2);
    expect(new Set(Object.values(weights)).size).toBeGreaterThan(1);
  });

  it('--json: every AUC is the pair count, intervals hold it and repeat, precision and mean weights are the plain ones', async () => {
    const a = capture();
    expect(await runCli(['eval', '--run', RUN, '--labels', labelsFile, '--json', '--url', url], a.io)).toBe(0);
    expect(a.err()).toBe('');
    const report = JSON.parse(a.out()) as Report;
    // The default: fused where the labelled clips have it, else score.
    const hasFused = [...label.keys()].some((id) => typeof views.get(id)!['fused'] === 'number');
    expect(report.signal).toBe(hasFused ? 'fused' : 'score');
    expect(report).toMatchObject({
      run: RUN,
      samples: known.size,
      bootstrap: { replicates: 2000, seed: 1, level: 0.95 },
      missing: { count: 0 },
    });
    expectFigures(report, report.signal);
    for (const g of [...report.labels, report.pooled, report.reference]) {
      const mine = [...label.keys()].filter((id) =>
        g.label === 'all non-reference' ? label.get(id) !== 'clean' : label.get(id) === g.label,
      );
      expect(g.meanWeight).toBeCloseTo(mine.reduce((s, id) => s + (weights[id] ?? 1), 0) / mine.length, 12);
    }
    const after = (await (await fetch(`${url}/v1/runs/${RUN}/weights`)).json()) as { version: number; weights: Record<string, number> };
    expect(after.weights).toEqual(weights);
    expect(report.weightsVersion).toBe(after.version);

    // The same seed gives the same output; another seed other intervals around the same AUCs.
    const b = capture();
    expect(await runCli(['eval', '--run', RUN, '--labels', labelsFile, '--json', '--url', url], b.io)).toBe(0);
    expect(b.out()).toBe(a.out());
    const c = capture();
    expect(await runCli(['eval', '--run', RUN, '--labels', labelsFile, '--json', '--seed', '2', '--url', url], c.io)).toBe(0);
    const other = JSON.parse(c.out()) as Report;
    expect(other.pooled.auc).toBe(report.pooled.auc);
    expect(other.pooled.ci).not.toEqual(report.pooled.ci);
  });

  it('--signal picks the ranking value, and names one the data lacks', async () => {
    for (const signal of ['score', 'fused', 'check']) {
      const c = capture();
      const code = await runCli(['eval', '--run', RUN, '--labels', labelsFile, '--signal', signal, '--json', '--url', url], c.io);
      if (typeof views.get('clean-00')![signal] === 'number') {
        expect(code).toBe(0);
        const report = JSON.parse(c.out()) as Report;
        expect(report.signal).toBe(signal);
        expect(report.harmful).toBe(signal === 'check' ? 'higher' : 'lower');
        expectFigures(report, signal);
      } else {
        expect(code).toBe(2);
        const has = ['fused', 'score', 'check'].filter((s) => typeof views.get('clean-00')![s] === 'number');
        expect(c.err()).toBe(
          `motive eval: MOTIVE_EVAL_SIGNAL: signal not in the run data: run ${RUN}'s data has no ${signal} value (it has: ${has.join(', ')})\n`,
        );
      }
    }
  });

  it('prints a table with one row per label, the pooled row and the reference', async () => {
    const j = capture();
    expect(await runCli(['eval', '--run', RUN, '--labels', labelsFile, '--json', '--url', url], j.io)).toBe(0);
    const report = JSON.parse(j.out()) as Report;
    const t = capture();
    expect(await runCli(['eval', '--run', RUN, '--labels', labelsFile, '--url', url], t.io)).toBe(0);
    const lines = t.out().trimEnd().split('\n');
    expect(lines[0]).toBe(
      `run ${RUN}: ${report.ranked} scored labelled clip(s) from ${labelsFile}; signal ${report.signal} (lower = more harmful); ` +
        `reference "clean"; weights version ${report.weightsVersion}`,
    );
    expect(lines[1]!.split(/\s{2,}/)).toEqual(['label', 'n', 'unscored', 'AUC', '95% CI', 'prec@10%', 'base rate', 'mean weight']);
    const f = (v: number | null): string => (v === null ? '-' : v.toFixed(4));
    const rows = [...report.labels, report.pooled, { ...report.reference, label: 'clean (reference)' }];
    rows.forEach((g, i) => {
      const ci = g.ci === null ? '-' : `${f(g.ci[0])}–${f(g.ci[1])}`;
      expect(lines[3 + i]!.split(/\s{2,}/)).toEqual([
        g.label,
        String(g.n),
        String(g.unscored),
        f(g.auc),
        ci,
        f(g.precisionAtTop),
        f(g.baseRate),
        f(g.meanWeight),
      ]);
    });
    expect(lines[3 + rows.length]).toBe(
      `AUC: P(${report.signal} of a labelled clip more harmful than a reference clip's) + ½ P(tie); 95% CI: stratified bootstrap, 2000 replicates, seed 1`,
    );
    expect(lines[4 + rows.length]).toBe(
      `prec@10%: share of the ${report.top} most harmful of the ${report.ranked} scored labelled clips; unscored clips (not seen yet) are left out of both`,
    );
  });

  /** Runs eval and expects exit code 2 with exactly one line on stderr, no stack. */
  async function refused(args: string[]): Promise<string> {
    const c = capture();
    expect(await runCli(['eval', ...args], c.io)).toBe(2);
    expect(c.out()).toBe('');
    expect(c.err().endsWith('\n')).toBe(true);
    expect(c.err().trimEnd().split('\n')).toHaveLength(1);
    expect(c.err()).not.toMatch(/\n\s+at /);
    return c.err().trimEnd();
  }

  function file(name: string, text: string): string {
    const path = join(dir.path, name);
    writeFileSync(path, text);
    return path;
  }

  it('refuses an unknown run, an unreachable daemon and a labels file it cannot read', async () => {
    expect(await refused(['--run', 'nope', '--labels', labelsFile, '--url', url])).toBe(
      'motive eval: MOTIVE_API_RUN_NOT_FOUND: run not found: nope',
    );
    expect(await refused(['--run', RUN, '--labels', labelsFile, '--url', 'http://127.0.0.1:9'])).toMatch(
      /^motive eval: cannot reach the daemon at http:\/\/127\.0\.0\.1:9 \(.*\); is it running\? start it with: npm start$/,
    );
    const absent = join(dir.path, 'absent.csv');
    expect(await refused(['--run', RUN, '--labels', absent, '--url', url])).toBe(
      `motive eval: MOTIVE_EVAL_LABELS: invalid labels file: cannot read ${absent} (ENOENT)`,
    );
  });

  it('refuses ids not in the run, naming how many and the first few; --ignore-missing leaves them out with a warning', async () => {
    const extra = ['ghost-1', 'ghost-2', 'ghost-3', 'ghost-4', 'ghost-5', 'ghost-6', 'ghost-7'];
    const text = ['id,label', ...[...label].map(([id, l]) => `${id},${l}`), ...extra.map((id) => `${id},jitter`)].join('\n');
    const path = file('ghosts.csv', text);
    const total = label.size + extra.length;
    expect(await refused(['--run', RUN, '--labels', path, '--url', url])).toBe(
      `motive eval: MOTIVE_EVAL_UNKNOWN_IDS: labelled clips not in the run: 7 of ${total} id(s) in ${path} are not in run ${RUN} ` +
        `(ghost-1, ghost-2, ghost-3, ghost-4, ghost-5, …); --ignore-missing evaluates the rest`,
    );
    const c = capture();
    expect(await runCli(['eval', '--run', RUN, '--labels', path, '--ignore-missing', '--json', '--url', url], c.io)).toBe(0);
    expect(c.err()).toBe(
      `motive eval: warning: 7 of ${total} id(s) in ${path} are not in run ${RUN} (ghost-1, ghost-2, ghost-3, ghost-4, ghost-5, …); left out\n`,
    );
    const report = JSON.parse(c.out()) as Report;
    expect(report.missing).toEqual({ count: 7, ids: extra.slice(0, 5) });
    expectFigures(report, report.signal);
  });

  it('refuses malformed files with the line, conflicting duplicates, a missing reference and a missing other side', async () => {
    const run = ['--run', RUN, '--url', url];
    const bad = file('bad.csv', 'id,label\nclean-00,clean\njitter-00\n');
    expect(await refused([...run, '--labels', bad])).toBe(
      `motive eval: MOTIVE_EVAL_LABELS: invalid labels file: ${bad}:3: 1 field(s), the header has 2`,
    );
    const noHeader = file('noheader.csv', 'clean-00,clean\n');
    expect(await refused([...run, '--labels', noHeader])).toMatch(
      /MOTIVE_EVAL_LABELS: invalid labels file: .*noheader\.csv:1: the header must name an "id" and a "label" column/,
    );
    const dup = file('dup.csv', 'id,label\nclean-00,clean\njitter-00,jitter\nclean-00,jitter\n');
    expect(await refused([...run, '--labels', dup])).toBe(
      `motive eval: MOTIVE_EVAL_LABELS: invalid labels file: ${dup}:4: id "clean-00" is labelled "jitter" here and "clean" on line 2`,
    );
    const noRef = file('noref.csv', 'id,label\nclean-00,good\njitter-00,jitter\n');
    expect(await refused([...run, '--labels', noRef])).toBe(
      `motive eval: MOTIVE_EVAL_LABELS: invalid labels file: ${noRef}: no clip is labelled "clean" (the reference; labels found: good, jitter); name another with --reference`,
    );
    const c = capture();
    expect(await runCli(['eval', ...run, '--labels', noRef, '--reference', 'good', '--json'], c.io)).toBe(0);
    expect((JSON.parse(c.out()) as Report).labels.map((g) => [g.label, g.n])).toEqual([['jitter', 1]]);
    const oneSide = file('oneside.csv', 'id,label\nclean-00,clean\nclean-01,clean\n');
    expect(await refused([...run, '--labels', oneSide])).toBe(
      `motive eval: MOTIVE_EVAL_LABELS: invalid labels file: ${oneSide}: every clip is labelled "clean"; label at least one clip otherwise`,
    );
    // Only unknown ids on the other side: nothing left to compare once they are left out.
    const ghostsOnly = file('ghostsonly.csv', 'id,label\nclean-00,clean\nghost,jitter\n');
    const g = capture();
    expect(await runCli(['eval', ...run, '--labels', ghostsOnly, '--ignore-missing'], g.io)).toBe(2);
    expect(g.err()).toBe(
      `motive eval: warning: 1 of 2 id(s) in ${ghostsOnly} are not in run ${RUN} (ghost); left out\n` +
        `motive eval: MOTIVE_EVAL_LABELS: invalid labels file: ${ghostsOnly}, after leaving out the ids not in the run: every clip is labelled "clean"; label at least one clip otherwise\n`,
    );
  });

  it('sends $MOTIVE_TOKEN to a daemon that wants one', async () => {
    const secured = await startTestDaemon({
      auth: {
        tokens: [
          { name: 'trainer', token: 'eval-trainer-token', role: 'trainer', runs: null },
          { name: 'viewer', token: 'eval-viewer-token', role: 'viewer', runs: null },
        ],
      },
    });
    try {
      const c = new MotiveClient({
        dtype: 'float32',
        address: `127.0.0.1:${secured.grpcPort}`,
        runId: 'secure',
        dim: 2,
        token: 'eval-trainer-token',
      });
      await c.connect();
      c.setQueries(1, 0, ['q'], Float32Array.from([1, 0]));
      await c.send(0, 0.1, ['good', 'bad'], Float32Array.from([1, 0, -1, 0]));
      await c.flush();
      c.close();
      const path = file('secure.csv', 'id,label\ngood,clean\nbad,jitter\n');
      const args = ['eval', '--run', 'secure', '--labels', path, '--json', '--url', `http://127.0.0.1:${secured.httpPort}`];
      const denied = capture();
      expect(await runCli(args, denied.io, {})).toBe(2);
      expect(denied.err()).toMatch(/^motive eval: MOTIVE_API_UNAUTHENTICATED: [^\n]*\n$/);
      const ok = capture();
      expect(await runCli(args, ok.io, { MOTIVE_TOKEN: 'eval-viewer-token' })).toBe(0);
      const report = JSON.parse(ok.out()) as Report;
      // bad's score −0.1 is below good's 0.1: a perfect separation.
      expect(report.labels.map((g) => [g.label, g.n, g.auc])).toEqual([['jitter', 1, 1]]);
    } finally {
      await secured.cleanup();
    }
  });

  it('answers usage errors with the usage line', async () => {
    const c = capture();
    expect(await runCli(['eval', '--run', RUN], c.io)).toBe(2);
    expect(c.err()).toMatch(/^motive eval: --labels is required\nusage: motive eval --run R --labels FILE\.csv/);
    const s = capture();
    expect(await runCli(['eval', '--run', RUN, '--labels', labelsFile, '--signal', 'loss'], s.io)).toBe(2);
    expect(s.err()).toMatch(/^motive eval: --signal must be one of fused, score, check\n/);
    const t = capture();
    expect(await runCli(['eval', '--run', RUN, '--labels', labelsFile, '--top', '0%'], t.io)).toBe(2);
    expect(t.err()).toMatch(/^motive eval: --top percentage must be in \(0, 100\]\n/);
  });
});
