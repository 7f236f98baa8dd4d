/**
 * The 1M-sample scan (k = 512) with each `influence.threads` setting, daemon only (no baselines):
 * for each setting a daemon child on the cached store answers `--queries` new queries in turn;
 * the table lists each scan's server-side time. Settings alternate in `--rounds` rounds, so a
 * change of the machine's other load hits them alike.
 *
 *   npx tsx bench/scan-threads.ts [--threads 0,1] [--queries 6] [--rounds 2] [--samples 1000000]
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BENCH_RUN, filledStore, filler } from './fill.js';
import { CACHE_DIR, fmt, postJson, report, startBenchDaemon } from './lib.js';

const { values } = parseArgs({
  options: {
    threads: { type: 'string', default: '0,1' },
    queries: { type: 'string', default: '6' },
    rounds: { type: 'string', default: '2' },
    samples: { type: 'string', default: '1000000' },
  },
});
const THREADS = values.threads.split(',').map(Number);
const QUERIES = Number(values.queries);
const ROUNDS = Number(values.rounds);
const N = Number(values.samples);
const K = 512;

const storeDir = await filledStore(N, K);
const rows: Array<Array<string | number>> = [];
for (let round = 1; round <= ROUNDS; round++) {
  for (const threads of THREADS) {
    const config = join(CACHE_DIR, `scan-threads-${threads}.json`);
    writeFileSync(config, JSON.stringify({ influence: { threads } }));
    const d = await startBenchDaemon({ dataDir: storeDir, env: { MOTIVE_CONFIG: config }, startTimeoutMs: 300_000 });
    const ms: number[] = [];
    try {
      for (let q = 0; q < QUERIES; q++) {
        const res = await postJson<{ elapsedMs: number }>(d.httpPort, `/v1/runs/${BENCH_RUN}/attribute`, {
          sketch: Array.from({ length: K }, filler(7000 + 100 * round + q)),
          limit: 20,
        });
        ms.push(res.elapsedMs);
      }
    } finally {
      await d.stop();
    }
    const sorted = [...ms].sort((a, b) => a - b);
    rows.push([
      round,
      threads === 0 ? '0 (one per core)' : threads,
      fmt(sorted[0] ?? NaN),
      fmt(sorted[Math.floor(sorted.length / 2)] ?? NaN),
      ms.map((v) => fmt(v, 0)).join(' '),
    ]);
    process.stderr.write(`round ${round}, threads ${threads}: ${ms.map((v) => fmt(v, 0)).join(' ')} ms\n`);
  }
}
report(
  'scan-threads',
  `Scan of ${N} samples (k = ${K}) by influence.threads: ${QUERIES} new queries per daemon, server-side ms`,
  ['round', 'influence.threads', 'best ms', 'median ms', 'each scan, ms'],
  rows,
);
