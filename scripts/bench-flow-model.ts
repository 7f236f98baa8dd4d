/**
 * Throughput of the shipped flow model under onnxruntime-node at a few frame sizes (frame pairs
 * per second, 16 pairs per call, as `motive profile` sends them). `npx tsx scripts/bench-flow-model.ts`.
 */
import { FlowEstimator } from '../daemon/motion/index.js';
const flow = await FlowEstimator.create({ threads: Number(process.env['THREADS'] ?? 0) });
for (const [h, w] of [
  [64, 64],
  [128, 128],
  [128, 224],
  [256, 256],
] as const) {
  const n = 17;
  const frames = new Uint8Array(n * h * w).map((_, i) => Math.imul(i, 2654435761) >>> 24);
  await flow.flows(frames, n, h, w);
  let reps = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 3000) {
    await flow.flows(frames, n, h, w);
    reps++;
  }
  const s = (performance.now() - t0) / 1000;
  process.stdout.write(`${w}x${h}: ${((reps * (n - 1)) / s).toFixed(1)} frame pairs/s\n`);
}
await flow.close();
