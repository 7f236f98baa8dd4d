/**
 * Per-clip motion descriptors from dense optical flow (pure functions, no I/O).
 *
 * All magnitudes are in pixels per frame at a 256-pixel short side: a flow measured on frames
 * whose short side is `s` pixels is multiplied by 256 / s. That is the scale VBench's dynamic-degree
 * threshold is written in (6 px at 256, `thres = 6 · min(H, W) / 256`), so numbers are comparable
 * across resolutions and against VBench.
 */

/** VBench's dynamic-degree threshold on a frame pair's top-5% mean flow magnitude (px at 256). */
export const VBENCH_DYNAMIC_THRESHOLD = 6;

/** Motion descriptors of one clip (docs/motion-profiling.md defines each). */
export interface MotionDescriptors {
  /** VBench's per-clip dynamic decision: more than round(4·F/16) of the pairs (the last two excluded) exceed the threshold. */
  readonly dynamic: boolean;
  /** Median over frame pairs of VBench's statistic (mean of the top 5% flow magnitudes), px/frame at 256. */
  readonly dynamicDegree: number;
  /** Mean flow magnitude over all pixels and pairs, px/frame at 256. */
  readonly flowMean: number;
  /** Mean over pairs of the top-5% mean flow magnitude, px/frame at 256. */
  readonly flowTop5: number;
  /** Mean change of the moving region's mean flow vector between consecutive pairs, px/frame² at 256. */
  readonly jitter: number;
  /** Fraction of consecutive moving pairs whose mean flow direction flips (cosine < 0). */
  readonly reversals: number;
  /** Fraction of pairs whose top-5% flow magnitude is under {@link DescriptorOptions.staticThreshold}. */
  readonly staticFraction: number;
  /** Frame pairs whose grey-level histograms differ by more than {@link DescriptorOptions.cutThreshold}. */
  readonly sceneCuts: number;
  /** Frames analysed. */
  readonly frames: number;
}

/** The descriptor names, in the order tables and exports list them. */
export const DESCRIPTOR_NAMES = [
  'dynamic',
  'dynamicDegree',
  'flowMean',
  'flowTop5',
  'jitter',
  'reversals',
  'staticFraction',
  'sceneCuts',
  'frames',
] as const satisfies readonly (keyof MotionDescriptors)[];

export interface DescriptorOptions {
  /** A pair is static when its top-5% magnitude is below this (px at 256; default 1). */
  readonly staticThreshold: number;
  /** A pixel moves when its magnitude exceeds this (px at 256; default 1). */
  readonly movingThreshold: number;
  /** Histogram L1 distance (0–2) above which a pair is a scene cut (default 0.5). */
  readonly cutThreshold: number;
}

export const DESCRIPTOR_DEFAULTS: DescriptorOptions = { staticThreshold: 1, movingThreshold: 1, cutThreshold: 0.5 };

const HISTOGRAM_BINS = 32;

/** Mean of the largest `int(n · 0.05)` values, as VBench's `get_score` computes it (0 when that count is 0). */
export function topFivePercentMean(values: Float32Array | Float64Array): number {
  const cut = Math.floor(values.length * 0.05);
  if (cut === 0) return 0;
  const sorted = Float64Array.from(values).sort();
  let total = 0;
  for (let i = sorted.length - cut; i < sorted.length; i++) total += sorted[i] as number;
  return total / cut;
}

function histogram(frames: Float32Array, offset: number, pixels: number): Float64Array {
  const h = new Float64Array(HISTOGRAM_BINS);
  for (let i = 0; i < pixels; i++) {
    const v = frames[offset + i] as number;
    h[Math.min(HISTOGRAM_BINS - 1, Math.max(0, Math.floor(v * HISTOGRAM_BINS)))]! += 1 / pixels;
  }
  return h;
}

/** Python's round(): halves go to the even neighbour (VBench is Python). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function median(values: number[]): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function mean(values: number[]): number {
  return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
}

/**
 * Descriptors of one clip.
 * @param frames grey frames in [0, 1], [F × height × width]
 * @param flows flow of each consecutive pair, [(F − 1) × 2 × height × width], pixels at the frames' size
 */
export function computeDescriptors(
  frames: Float32Array,
  flows: Float32Array,
  frameCount: number,
  height: number,
  width: number,
  options: DescriptorOptions = DESCRIPTOR_DEFAULTS,
): MotionDescriptors {
  const pixels = height * width;
  const pairs = Math.max(0, frameCount - 1);
  const scale = 256 / Math.min(height, width);
  const magnitudes = new Float32Array(pixels);
  const top5: number[] = [];
  const means: number[] = [];
  // Per pair: the moving region's mean flow vector, or null when the pair is a cut.
  const vectors: Array<[number, number] | null> = [];
  let cuts = 0;
  let previousHistogram = frameCount > 0 ? histogram(frames, 0, pixels) : new Float64Array(HISTOGRAM_BINS);
  for (let t = 0; t < pairs; t++) {
    const nextHistogram = histogram(frames, (t + 1) * pixels, pixels);
    let distance = 0;
    for (let b = 0; b < HISTOGRAM_BINS; b++) distance += Math.abs((nextHistogram[b] as number) - (previousHistogram[b] as number));
    previousHistogram = nextHistogram;
    if (distance > options.cutThreshold) {
      // Flow across a cut is meaningless; the pair counts as a cut only.
      cuts++;
      vectors.push(null);
      continue;
    }
    const base = t * 2 * pixels;
    let sum = 0;
    let mu = 0;
    let mv = 0;
    let moving = 0;
    for (let p = 0; p < pixels; p++) {
      const u = (flows[base + p] as number) * scale;
      const v = (flows[base + pixels + p] as number) * scale;
      const m = Math.hypot(u, v);
      magnitudes[p] = m;
      sum += m;
      if (m > options.movingThreshold) {
        mu += u;
        mv += v;
        moving++;
      }
    }
    means.push(sum / pixels);
    top5.push(topFivePercentMean(magnitudes));
    vectors.push(moving > 0 ? [mu / moving, mv / moving] : [0, 0]);
  }

  // VBench's check_move: the last two pairs are not counted; moving when count > round(4·F/16).
  const countNum = roundHalfEven((4 * frameCount) / 16);
  const considered = top5.slice(0, Math.max(0, top5.length - 2));
  const dynamic = considered.filter((s) => s > VBENCH_DYNAMIC_THRESHOLD).length > countNum;

  const accelerations: number[] = [];
  let flips = 0;
  let movingPairs = 0;
  for (let t = 0; t + 1 < vectors.length; t++) {
    const a = vectors[t];
    const b = vectors[t + 1];
    if (a === null || a === undefined || b === null || b === undefined) continue;
    accelerations.push(Math.hypot(b[0] - a[0], b[1] - a[1]));
    const na = Math.hypot(a[0], a[1]);
    const nb = Math.hypot(b[0], b[1]);
    if (na > options.movingThreshold && nb > options.movingThreshold) {
      movingPairs++;
      if (a[0] * b[0] + a[1] * b[1] < 0) flips++;
    }
  }
  return {
    dynamic,
    dynamicDegree: median(top5),
    flowMean: mean(means),
    flowTop5: mean(top5),
    jitter: mean(accelerations),
    reversals: movingPairs === 0 ? 0 : flips / movingPairs,
    staticFraction: top5.length === 0 ? 1 : top5.filter((s) => s < options.staticThreshold).length / top5.length,
    sceneCuts: cuts,
    frames: frameCount,
  };
}
