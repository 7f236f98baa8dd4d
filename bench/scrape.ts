/**
 * What a Prometheus scrape costs the Ack path: a daemon in this process holds one run of `--samples`
 * samples (k = 16, 8 queries), a batch changes the run before each scrape (so its distributions are
 * recomputed), and the scrape's `GET /metrics` is timed together with the longest event-loop delay
 * while it runs (`monitorEventLoopDelay`, 1 ms resolution): that delay is how long an Ack arriving
 * during the scrape could wait. Beside it, one synchronous pass of `computeDistribution` over the
 * same run (what a scrape held the event loop for before the distributions were computed in slices).
 *
 *   npx tsx bench/scrape.ts [--samples 100000,500000] [--scrapes 3]
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { computeDistribution } from '../daemon/influence/index.js';
import { MotiveClient } from '../trainer-hooks/ts/index.js';
import { startTestDaemon } from '../test/helpers/daemon.js';
import { rng } from '../test/helpers/reference.js';
import { fmt, report } from './lib.js';

const { values } = parseArgs({
  options: {
    samples: { type: 'string', default: '100000,500000' },
    scrapes: { type: 'string', default: '3' },
  },
});
const SIZES = values.samples.split(',').map(Number);
const SCRAPES = Number(values.scrapes);
const K = 16;
const BATCH = 2000;

const rows: Array<Array<string | number>> = [];
for (const n of SIZES) {
  const d = await startTestDaemon({ weights: { minSeen: 1, intervalMs: 60_000 } });
  const c = new MotiveClient({ dtype: 'float32', address: `127.0.0.1:${d.grpcPort}`, runId: 'scrape', dim: K, applyWeights: false });
  try {
    await c.connect();
    const r = rng(1);
    c.setQueries(
      1,
      0,
      Array.from({ length: 8 }, (_, j) => `q${j}`),
      Float32Array.from({ length: 8 * K }, () => r.normal()),
    );
    const sk = Float32Array.from({ length: BATCH * K }, () => r.normal());
    for (let at = 0; at < n; at += BATCH)
      await c.send(
        1,
        1e-3,
        Array.from({ length: BATCH }, (_, i) => `s${at + i}`),
        sk,
      );
    await c.flush();
    const run = d.store.run('scrape');
    if (run === undefined) throw new Error('run not found');
    /** A batch that changes the run, so its distributions must be recomputed. */
    const touch = async (step: number) => {
      await c.send(step, 1e-3, ['s1', 's2'], sk.subarray(0, 2 * K));
      await c.flush();
    };
    for (let i = 0; i < SCRAPES; i++) {
      await touch(2 + 2 * i);
      const t0 = performance.now();
      computeDistribution(run);
      const syncMs = performance.now() - t0;
      await touch(3 + 2 * i);
      const h = monitorEventLoopDelay({ resolution: 1 });
      h.enable();
      const t1 = performance.now();
      await (await fetch(`http://127.0.0.1:${d.httpPort}/metrics`)).text();
      const scrapeMs = performance.now() - t1;
      h.disable();
      rows.push([run.samples.size, i + 1, fmt(scrapeMs), fmt(h.max / 1e6), fmt(syncMs)]);
    }
  } finally {
    c.close();
    await d.cleanup();
  }
}
report(
  'scrape',
  `Prometheus scrape of one run (k ${K}, 8 queries), in process`,
  ['samples', 'scrape', 'scrape ms', 'longest event-loop delay ms', 'one synchronous pass ms'],
  rows,
);
