/**
 * Preview generation (docs/motion-profiling.md, "Previews") on 256 × 256 input clips made by
 * ffmpeg's lavfi sources (H.264, 24 frames/s): clips/s of
 *
 *   - the strip and the animation alone (one ffmpeg per clip, `--jobs` at a time);
 *   - the flow heat map alone (mean magnitude, colours, PNG) from a flow of the analysis size;
 *   - `motive profile`'s work per clip (probe, decode, flow, descriptors) without previews and with
 *     them, `--jobs` clips at a time on one flow session: the difference is what previews cost
 *     inside a profiling pass, where their ffmpeg runs beside the flow estimation.
 *
 * Prints each figure with the load average (1 min) before and after it: on a shared machine the
 * figures move with the load.
 *
 *   npx tsx bench/previews.ts [--clips 12] [--seconds 4] [--jobs 2] [--quick]
 */
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  FlowEstimator,
  PREVIEW_DEFAULTS,
  PROFILER_DEFAULTS,
  analysisSize,
  encodePng,
  encodeStripAndAnim,
  flowHeatMap,
  profileAll,
  type ClipSource,
} from '../daemon/motion/index.js';
import { tempDir } from '../test/helpers/daemon.js';
import { LAVFI_KINDS, writeLavfiClip } from '../test/fixtures/lavfi-clips.js';
import { fmt, report } from './lib.js';

const { values } = parseArgs({
  options: {
    clips: { type: 'string', default: '12' },
    seconds: { type: 'string', default: '4' },
    jobs: { type: 'string', default: String(Math.min(2, availableParallelism())) },
    quick: { type: 'boolean' },
  },
});
const CLIPS = values.quick ? 4 : Number(values.clips);
const SECONDS = values.quick ? 2 : Number(values.seconds);
const JOBS = Number(values.jobs);
const SIZE = 256;
const FPS = 24;

const load = (): string => (loadavg()[0] ?? 0).toFixed(1);

async function pool<T>(items: readonly T[], jobs: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: jobs }, async () => {
      for (let i = next++; i < items.length; i = next++) await work(items[i] as T);
    }),
  );
}

async function timed(work: () => Promise<void>): Promise<{ seconds: number; loadBefore: string; loadAfter: string }> {
  const loadBefore = load();
  const t = performance.now();
  await work();
  return { seconds: (performance.now() - t) / 1000, loadBefore, loadAfter: load() };
}

const dir = tempDir('motive-bench-previews-');
try {
  const clips: ClipSource[] = [];
  for (let i = 0; i < CLIPS; i++) {
    const kind = LAVFI_KINDS[i % LAVFI_KINDS.length]!;
    const path = join(dir.path, `clip-${i}.mp4`);
    await writeLavfiClip(path, kind, { width: SIZE, height: SIZE, fps: FPS, seconds: SECONDS, variant: i });
    clips.push({ id: `clip-${i}`, path });
  }
  const frames = FPS * SECONDS;
  const stride = Math.round(FPS / PROFILER_DEFAULTS.sampleFps);
  const rows: Array<Array<string | number>> = [];
  const row = (what: string, n: number, r: { seconds: number; loadBefore: string; loadAfter: string }): void => {
    rows.push([what, n, fmt(r.seconds, 2), fmt(n / r.seconds, 2), `${r.loadBefore} → ${r.loadAfter}`]);
    process.stderr.write(`${what}: ${fmt(n / r.seconds, 2)} clips/s (load ${r.loadBefore} → ${r.loadAfter})\n`);
  };

  let bytes = { strip: 0, anim: 0, flow: 0 };
  row(
    `strip + animation (ffmpeg), ${JOBS} at a time`,
    CLIPS,
    await timed(() =>
      pool(clips, JOBS, async (c) => {
        const p = await encodeStripAndAnim(c.path, frames, stride);
        bytes = { ...bytes, strip: bytes.strip + p.strip.length, anim: bytes.anim + p.anim.length };
      }),
    ),
  );

  // A flow field of the analysis size and frame count the profile would give these clips.
  const a = analysisSize(SIZE, SIZE, PROFILER_DEFAULTS.shortSide);
  const pairs = Math.min(PROFILER_DEFAULTS.maxFrames, Math.ceil(frames / stride)) - 1;
  const flows = Float32Array.from({ length: pairs * 2 * a.width * a.height }, (_, i) => Math.sin(i * 0.37) * 3);
  row(
    `flow heat map (${a.width}×${a.height}, ${pairs} pairs)`,
    CLIPS,
    await timed(async () => {
      for (let i = 0; i < CLIPS; i++)
        bytes.flow += encodePng(flowHeatMap(flows, pairs, a.height, a.width, PREVIEW_DEFAULTS.flowScaleMax), a.width, a.height).length;
    }),
  );

  const flow = await FlowEstimator.create();
  try {
    for (const previews of [null, PREVIEW_DEFAULTS]) {
      const r = await timed(() =>
        profileAll(clips, flow, {
          jobs: JOBS,
          profiler: { ...PROFILER_DEFAULTS, previews },
          known: () => Promise.resolve(new Set<string>()),
          onOutcome: async (o) => {
            if (o.kind === 'failed') throw o.error;
            if (previews !== null && o.kind === 'profiled' && o.previews === undefined) throw o.previewError ?? new Error('no previews');
          },
        }),
      );
      row(`profile ${previews === null ? 'without' : 'with'} previews, ${JOBS} at a time`, CLIPS, r);
    }
  } finally {
    await flow.close();
  }
  report(
    'previews',
    `Preview generation: ${CLIPS} clips of ${SIZE}×${SIZE}, ${SECONDS} s at ${FPS} frames/s (H.264)`,
    ['what', 'clips', 's', 'clips/s', 'load 1 min'],
    rows,
    {
      meanBytes: { strip: Math.round(bytes.strip / CLIPS), anim: Math.round(bytes.anim / CLIPS), flow: Math.round(bytes.flow / CLIPS) },
    },
  );
  process.stdout.write(
    `mean sizes: strip ${Math.round(bytes.strip / CLIPS / 1024)} KiB, animation ${Math.round(bytes.anim / CLIPS / 1024)} KiB, heat map ${Math.round(bytes.flow / CLIPS / 1024)} KiB\n`,
  );
} finally {
  dir.remove();
}
