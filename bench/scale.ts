/**
 * How one daemon's costs grow with the catalogue, the measurements behind the 10M-clip plan in
 * docs/performance.md ("Toward 10M clips"): for each sample count, on the cached filled store
 * (k = 512, 8 query sums per sample, bench/fill.ts), the store's size on disk, the daemon's
 * start-up time (spawn to ready, which loads every sample's counters and its int8 scan copy),
 * its resident memory after start-up and after scans, and the time of a new-query scan
 * (`POST /attribute`, client wall time, best and median of `--scans`). The last columns divide by
 * the sample count, so the rows show whether each cost stays linear; the closing line extrapolates
 * them to 10M samples.
 *
 *   npx tsx bench/scale.ts [--samples 1000000,2000000] [--scans 7]
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BENCH_RUN, filledStore } from './fill.js';
import { fmt, postJson, quantile, report, rssMiB, startBenchDaemon } from './lib.js';

const { values } = parseArgs({
  options: {
    samples: { type: 'string', default: '1000000,2000000' },
    scans: { type: 'string', default: '7' },
    quick: { type: 'boolean' },
  },
});
const COUNTS = (values.quick === true ? '100000,200000' : values.samples).split(',').map(Number);
const SCANS = Number(values.scans);
const K = 512;

/** Bytes of every file under `dir`. */
function duBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += duBytes(path);
    else if (entry.isFile()) total += statSync(path).size;
  }
  return total;
}

const query = (seed: number): number[] => Array.from({ length: K }, (_, i) => Math.sin(seed * 7919 + i));
const rows: Array<Array<string | number>> = [];
const perSample: Array<{ n: number; diskB: number; anonB: number; scanNs: number; startUs: number }> = [];

for (const n of COUNTS) {
  const dir = await filledStore(n, K);
  const disk = duBytes(dir);
  // Start-up twice: the first may read the segments from disk, the second finds them in the page
  // cache, as a restart of a running machine does.
  const starts: number[] = [];
  for (let i = 0; i < 2; i++) {
    const d = await startBenchDaemon({ dataDir: dir });
    starts.push(d.startMs);
    if (i === 0) {
      await d.stop();
      continue;
    }
    try {
      await new Promise((r) => setTimeout(r, 1000));
      const afterStart = rssMiB(d.pid);
      const times: number[] = [];
      for (let s = 0; s < SCANS; s++) {
        const t0 = performance.now();
        await postJson(d.httpPort, `/v1/runs/${BENCH_RUN}/attribute`, { sketch: query(s + 1), limit: 20 });
        times.push(performance.now() - t0);
      }
      const afterScans = rssMiB(d.pid);
      times.sort((a, b) => a - b);
      const best = times[0] as number;
      const median = quantile(times, 0.5);
      rows.push([
        n,
        fmt(disk / 2 ** 30, 2),
        `${fmt((starts[0] as number) / 1000)} / ${fmt((starts[1] as number) / 1000)}`,
        fmt(afterStart.rss, 0),
        fmt(afterScans.anon, 0),
        fmt(best, 0),
        fmt(median, 0),
        fmt(disk / n, 0),
        fmt((afterScans.anon * 2 ** 20) / n, 0),
        fmt((median * 1e6) / n, 0),
      ]);
      perSample.push({
        n,
        diskB: disk / n,
        anonB: (afterScans.anon * 2 ** 20) / n,
        scanNs: (median * 1e6) / n,
        startUs: ((starts[1] as number) * 1000) / n,
      });
    } finally {
      await d.stop();
    }
  }
}

/**
 * 10M by a straight line through the last two rows (fixed cost plus the marginal cost per sample),
 * or through the origin with one row: the per-sample columns of small stores carry the daemon's
 * fixed memory and start-up, which the marginal cost leaves out.
 */
function at10M(pick: (p: (typeof perSample)[number]) => number): number {
  const b = perSample[perSample.length - 1];
  if (b === undefined) return NaN;
  const a = perSample[perSample.length - 2];
  const total = (p: (typeof perSample)[number]): number => pick(p) * p.n;
  if (a === undefined) return total(b) * (10_000_000 / b.n);
  const slope = (total(b) - total(a)) / (b.n - a.n);
  return total(b) + slope * (10_000_000 - b.n);
}
const last = perSample[perSample.length - 1];
const extrapolation =
  last === undefined
    ? {}
    : {
        at10M: {
          diskGiB: at10M((p) => p.diskB) / 2 ** 30,
          memoryGiB: at10M((p) => p.anonB) / 2 ** 30,
          scanMs: at10M((p) => p.scanNs) / 1e6,
          startSeconds: at10M((p) => p.startUs) / 1e6,
        },
      };
report(
  'scale',
  `One daemon against catalogue size (k = ${K}, 8 query sums per sample; scans: ${SCANS} new queries each)`,
  [
    'samples',
    'store on disk, GiB',
    'start-up, s (cold / warm)',
    'VmRSS after start-up, MiB',
    'RssAnon after scans, MiB',
    'scan best, ms',
    'scan median, ms',
    'disk B/sample',
    'memory B/sample',
    'scan ns/sample',
  ],
  rows,
  extrapolation,
);
if (last !== undefined && 'at10M' in extrapolation) {
  const x = extrapolation.at10M;
  process.stdout.write(
    `\nlinear extrapolation to 10M samples (through the last ${Math.min(2, perSample.length)} rows): ${fmt(x.diskGiB, 0)} GiB on disk, ` +
      `${fmt(x.memoryGiB, 1)} GiB of daemon memory, a ${fmt(x.scanMs, 0)} ms scan, ${fmt(x.startSeconds, 0)} s warm start-up\n`,
  );
}
