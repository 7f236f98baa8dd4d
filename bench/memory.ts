/**
 * Daemon memory at 1M tracked samples: a daemon child process on the cached filled store
 * (k = 512, 8 query sums per sample), VmRSS / VmHWM from /proc/<pid>/status after start-up,
 * after one attribution scan and after three more; then, on a copy of the store (the cached one
 * stays as filled), while ingesting: batches of 256 of the run's own clips, fp16, for
 * `--ingest-seconds` at the daemon's pace, so the store's dirty-sample budget
 * (`store.maxDirtySamples`, one cached G(z) delta of 4·k bytes each) fills up; RSS is read every
 * 250 ms and the row is its peak. `--profile` takes a CPU profile of the daemon in that phase
 * and prints its top functions (ingest into a million samples, where `bench/ingest.ts --profile`
 * profiles a fresh run).
 *
 *   npx tsx bench/memory.ts [--samples 1000000] [--ingest-seconds 30] [--config FILE] [--profile]
 */
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { tempDir } from '../test/helpers/daemon.js';
import { hello, rawStream } from '../test/helpers/raw-stream.js';
import { rng } from '../test/helpers/reference.js';
import { encodeFloat16Array } from '../trainer-hooks/ts/index.js';
import { BENCH_RUN, filledStore, sampleId } from './fill.js';
import {
  CACHE_DIR,
  fmt,
  keepSending,
  postJson,
  printProfile,
  report,
  rssMiB,
  scrapeMetric,
  startBenchDaemon,
  summarizeProfile,
} from './lib.js';

const { values } = parseArgs({
  options: {
    samples: { type: 'string', default: '1000000' },
    'ingest-seconds': { type: 'string', default: '30' },
    config: { type: 'string' },
    quick: { type: 'boolean' },
    profile: { type: 'boolean' },
  },
});
const N = values.quick ? 100_000 : Number(values.samples);
const INGEST_SECONDS = values.quick ? 8 : Number(values['ingest-seconds']);
const K = 512;
const BATCH = 256;
const WINDOW = 32;
const env = values.config === undefined ? undefined : { MOTIVE_CONFIG: values.config };

const storeDir = await filledStore(N, K);
const rows: Array<Array<string | number>> = [];
let ingestNote = '';
const profDir = join(CACHE_DIR, 'prof-memory-ingest');
let profile: ReturnType<typeof summarizeProfile> | undefined;
if (values.profile === true) {
  rmSync(profDir, { recursive: true, force: true });
  mkdirSync(profDir, { recursive: true });
}
const sample = (pid: number, label: string, m = rssMiB(pid)): void => {
  rows.push([N, label, fmt(m.rss, 0), fmt(m.anon, 0), fmt(m.file, 0), fmt(m.peak, 0), fmt((m.anon * 1024 * 1024) / N, 0)]);
};

const d = await startBenchDaemon({ dataDir: storeDir, ...(env === undefined ? {} : { env }) });
try {
  await new Promise((r) => setTimeout(r, 1000));
  sample(d.pid, `after start-up (${fmt(d.startMs / 1000)} s)`);
  const query = (seed: number): number[] => Array.from({ length: K }, (_, i) => Math.sin(seed * 7919 + i));
  await postJson(d.httpPort, `/v1/runs/${BENCH_RUN}/attribute`, { sketch: query(1), limit: 20 });
  sample(d.pid, 'after one scan');
  for (let i = 2; i <= 4; i++) await postJson(d.httpPort, `/v1/runs/${BENCH_RUN}/attribute`, { sketch: query(i), limit: 20 });
  sample(d.pid, 'after four scans');
} finally {
  await d.stop();
}

if (INGEST_SECONDS > 0) {
  const copy = tempDir('motive-bench-memory-');
  try {
    process.stderr.write(`copying the store for the ingest phase…\n`);
    cpSync(storeDir, copy.path, { recursive: true });
    const di = await startBenchDaemon({
      dataDir: copy.path,
      ...(env === undefined ? {} : { env }),
      ...(values.profile === true ? { cpuProfDir: profDir } : {}),
    });
    try {
      const s = rawStream(`127.0.0.1:${di.grpcPort}`);
      s.write(
        hello(BENCH_RUN, K, { projection: { kind: 'gaussian', seed: 1, dim: K, fingerprint: 'bench' }, dtype: 'FLOAT16', client: 'bench' }),
      );
      const welcome = await s.next(30_000);
      if (welcome === 'end' || welcome.welcome === undefined) throw new Error(`no Welcome: ${JSON.stringify(welcome)}`);
      const r = rng(7);
      const payloads = Array.from({ length: 4 }, () =>
        encodeFloat16Array(Float32Array.from({ length: BATCH * K }, () => r.normal() * 1e-3)),
      );
      let peak = rssMiB(di.pid);
      const watch = setInterval(() => {
        const m = rssMiB(di.pid);
        if (m.rss > peak.rss) peak = m;
      }, 250);
      const deadline = performance.now() + INGEST_SECONDS * 1000;
      let seq = 0;
      const started = performance.now();
      const acks = await keepSending(
        s,
        WINDOW,
        () => {
          seq++;
          const ids = Array.from({ length: BATCH }, () => sampleId(r.int(N)));
          s.write({
            batch: { seq, step: N + seq, lr: 1e-4, sampleIds: ids, sketches: payloads[seq % payloads.length] as Buffer, losses: [] },
          });
        },
        () => performance.now() < deadline,
      );
      const rate = (acks * BATCH) / ((performance.now() - started) / 1000);
      clearInterval(watch);
      s.close();
      const m = rssMiB(di.pid);
      if (m.rss > peak.rss) peak = m;
      // Scraped once, at the end: a scrape computes the run's distributions over every sample.
      const [dirty, heap, external] = await scrapeMetric(
        di,
        'motive_store_dirty_samples',
        'nodejs_heap_size_used_bytes',
        'nodejs_external_memory_bytes',
      );
      sample(di.pid, `ingesting ${INGEST_SECONDS} s (${fmt(rate, 0)} sketches/s): peak`, peak);
      ingestNote =
        `at the end of the ingest phase: ${dirty} samples dirty, V8 heap used ${fmt((heap ?? NaN) / 2 ** 20, 0)} MiB, ` +
        `external memory (ArrayBuffers, WebAssembly memories) ${fmt((external ?? NaN) / 2 ** 20, 0)} MiB`;
    } finally {
      await di.stop();
    }
    if (values.profile === true) profile = summarizeProfile(profDir);
  } finally {
    copy.remove();
  }
}

report(
  'memory',
  `Daemon memory with ${N} tracked samples (k ${K}, 8 query sums each)${values.config === undefined ? '' : `, config ${values.config}`}`,
  ['samples', 'when', 'RSS MiB', 'anon MiB', 'file MiB', 'peak RSS MiB', 'anon bytes/sample'],
  rows,
  {
    target: 'RSS <= 1.5 GiB at 1M tracked samples',
    ...(profile === undefined ? {} : { profile }),
    note:
      'VmRSS = RssAnon (the process heap) + RssFile (LMDB pages touched through the memory map: shared, evictable page cache) + RssShmem' +
      (ingestNote === '' ? '' : `; ${ingestNote}`),
  },
);
if (ingestNote !== '') process.stdout.write(`${ingestNote}\n`);
if (profile !== undefined) printProfile(`ingest into ${N} samples, the daemon's start-up included`, profile);
