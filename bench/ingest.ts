/**
 * Ingest throughput: sample-sketches/s through the real gRPC stream into the real store (durable
 * group commits), for k ∈ {512, 2048}, m ∈ {8, 64}, batch ∈ {16, 256}, fp16, 1 and 4 ranks.
 * The daemon runs as its own process; trainers send pre-encoded batches as fast as flow control
 * lets them, each rank keeping up to 32 batches unacknowledged.
 *
 *   npx tsx bench/ingest.ts [--seconds 4] [--quick]
 */
import { parseArgs } from 'node:util';
import { encodeFloat16Array } from '../trainer-hooks/ts/index.js';
import { rng } from '../test/helpers/reference.js';
import { spawnDaemon, tempDir } from '../test/helpers/daemon.js';
import { rawStream } from '../test/helpers/raw-stream.js';
import { report } from './lib.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '4' }, quick: { type: 'boolean' } } });
const SECONDS = Number(values.seconds);
const WINDOW = 32;
const POOL = 200_000;

interface Case {
  k: number;
  m: number;
  batch: number;
  ranks: number;
}

async function runCase(c: Case): Promise<{ rate: number; mbps: number; batches: number }> {
  const dir = tempDir('motive-bench-');
  const d = await spawnDaemon({ MOTIVE_DATA_DIR: dir.path, MOTIVE_GRPC_PORT: '0', MOTIVE_HTTP_PORT: '0', MOTIVE_LOG_LEVEL: 'warn' });
  const r = rng(c.k + c.m + c.batch);
  // A few distinct pre-encoded payloads, reused with fresh sample ids.
  const payloads = Array.from({ length: 4 }, () => encodeFloat16Array(Float32Array.from({ length: c.batch * c.k }, () => r.normal())));
  const queries = encodeFloat16Array(Float32Array.from({ length: c.m * c.k }, () => r.normal()));
  let acked = 0;
  let bytes = 0;
  const deadline = { at: 0 };
  const streams = Array.from({ length: c.ranks }, (_, rank) => rawStream(`127.0.0.1:${d.grpcPort}`));
  await Promise.all(
    streams.map(async (s, rank) => {
      s.write({
        hello: { runId: 'bench', rank, worldSize: c.ranks, projection: { kind: 'gaussian', seed: 1, dim: c.k, fingerprint: 'b' }, dtype: 'FLOAT16', token: '', client: 'bench', applyWeights: false },
      });
      await s.next(30_000);
      if (rank === 0) s.write({ queries: { version: 1, step: 0, queryIds: Array.from({ length: c.m }, (_, j) => `q${j}`), groups: [], sketches: queries } });
    }),
  );
  const started = performance.now();
  deadline.at = started + SECONDS * 1000;
  await Promise.all(
    streams.map(async (s, rank) => {
      let seq = 0;
      let inflight = 0;
      const rr = rng(rank + 1);
      const send = (): void => {
        seq++;
        const ids = Array.from({ length: c.batch }, () => `clip-${rr.int(POOL)}`);
        const sketches = payloads[seq % payloads.length] as Buffer;
        s.write({ batch: { seq, step: seq, lr: 1e-4, sampleIds: ids, sketches, losses: [] } });
        bytes += sketches.length;
        inflight++;
      };
      while (inflight < WINDOW) send();
      while (inflight > 0) {
        const m = await s.next(60_000);
        if (m === 'end') throw new Error('stream ended');
        if (m.error) throw new Error(`${m.error.code}: ${m.error.message}`);
        if (!m.ack) continue;
        inflight--;
        acked += c.batch;
        if (performance.now() < deadline.at) send();
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  streams.forEach((s) => s.close());
  d.proc.kill('SIGTERM');
  await d.exited;
  dir.remove();
  return { rate: acked / elapsed, mbps: bytes / elapsed / 1024 / 1024, batches: acked / c.batch };
}

const cases: Case[] = [];
for (const k of values.quick ? [512] : [512, 2048])
  for (const m of values.quick ? [64] : [8, 64])
    for (const batch of values.quick ? [256] : [16, 256]) for (const ranks of values.quick ? [1] : [1, 4]) cases.push({ k, m, batch, ranks });

const rows: Array<Array<string | number>> = [];
for (const c of cases) {
  const res = await runCase(c);
  rows.push([c.k, c.m, c.batch, c.ranks, Math.round(res.rate), Number(res.mbps.toFixed(1)), Math.round(res.batches)]);
  process.stderr.write(`k=${c.k} m=${c.m} batch=${c.batch} ranks=${c.ranks}: ${Math.round(res.rate)} sketches/s\n`);
}
report('ingest', `Ingest: sample-sketches/s, fp16, durable commits, ${SECONDS} s per case`, ['k', 'm', 'batch', 'ranks', 'sketches/s', 'MiB/s in', 'batches'], rows, {
  target: '>= 100000 sketches/s at k=512, m=64, fp16, batch 256',
});
