/**
 * Daemon memory at 1M tracked samples: a daemon child process on the cached filled store
 * (k = 512, 8 query sums per sample), VmRSS / VmHWM from /proc/<pid>/status after start-up,
 * after one attribution scan and after three more.
 *
 *   npx tsx bench/memory.ts [--samples 1000000]
 */
import { parseArgs } from 'node:util';
import { BENCH_RUN, filledStore } from './fill.js';
import { fmt, postJson, report, rssMiB, startBenchDaemon } from './lib.js';

const { values } = parseArgs({ options: { samples: { type: 'string', default: '1000000' }, quick: { type: 'boolean' } } });
const N = values.quick ? 100_000 : Number(values.samples);
const K = 512;

const storeDir = await filledStore(N, K);
const d = await startBenchDaemon({ dataDir: storeDir });
const rows: Array<Array<string | number>> = [];
const sample = (label: string): void => {
  const m = rssMiB(d.pid);
  rows.push([N, label, fmt(m.rss, 0), fmt(m.anon, 0), fmt(m.file, 0), fmt(m.peak, 0), fmt((m.anon * 1024 * 1024) / N, 0)]);
};
try {
  await new Promise((r) => setTimeout(r, 1000));
  sample(`after start-up (${fmt(d.startMs / 1000)} s)`);
  const query = (seed: number): number[] => Array.from({ length: K }, (_, i) => Math.sin(seed * 7919 + i));
  await postJson(d.httpPort, `/v1/runs/${BENCH_RUN}/attribute`, { sketch: query(1), limit: 20 });
  sample('after one scan');
  for (let i = 2; i <= 4; i++) await postJson(d.httpPort, `/v1/runs/${BENCH_RUN}/attribute`, { sketch: query(i), limit: 20 });
  sample('after four scans');
} finally {
  await d.stop();
}
report(
  'memory',
  `Daemon memory with ${N} tracked samples (k ${K}, 8 query sums each)`,
  ['samples', 'when', 'RSS MiB', 'anon MiB', 'file MiB', 'peak RSS MiB', 'anon bytes/sample'],
  rows,
  {
    target: 'RSS <= 1.5 GiB at 1M tracked samples',
    note: 'VmRSS = RssAnon (the process heap) + RssFile (LMDB pages touched through the memory map: shared, evictable page cache) + RssShmem',
  },
);
