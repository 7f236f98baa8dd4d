/**
 * A synthetic attribution stream through the TypeScript trainer client: a pool of clips, a few of
 * them planted as harmful (their sketches point against the motion queries, the way clips with
 * camera shake, frozen frames, flicker or scrambled frames oppose smooth motion), the rest
 * mildly helpful. It exercises the whole daemon the way a trainer would, but it is not a model:
 * the demo labels it as synthetic, and tests use it to drive the daemon.
 */
import { MotiveClient } from '../../trainer-hooks/ts/index.js';

export interface SyntheticRunOptions {
  /** host:port of the daemon's gRPC listener. */
  readonly address: string;
  readonly runId: string;
  /** Sketch length k. Default 128. */
  readonly dim?: number;
  /** Clips in the pool. Default 400. */
  readonly clips?: number;
  /** Share of the pool planted harmful. Default 0.08. */
  readonly harmfulFraction?: number;
  /** Optimizer steps to stream; Infinity streams until `signal` aborts. Default 200. */
  readonly steps?: number;
  /** Clips per batch. Default 16. */
  readonly batchSize?: number;
  /** Pause after each step, ms (paces the stream so it can be watched). Default 0. */
  readonly stepDelayMs?: number;
  /** Refresh the query set every this many steps. Default 100. */
  readonly queryRefreshEvery?: number;
  /** Motion queries. Default 4. */
  readonly queries?: number;
  readonly seed?: number;
  readonly signal?: AbortSignal;
  /** Called after each step is sent. */
  readonly onStep?: (step: number, progress: SyntheticRunProgress) => void;
}

export interface SyntheticRunProgress {
  readonly batches: number;
  readonly sketches: number;
  readonly querySets: number;
  readonly weightsVersion: number;
  readonly downweighted: number;
}

/** The kinds of planted harmful clip, used in their ids so the tables read naturally. */
export const HARMFUL_KINDS = ['camera-shake', 'frozen', 'flicker', 'scrambled'] as const;

/** A small seeded generator (mulberry32) with Gaussian draws. */
export function seededRandom(seed: number): { next: () => number; normal: () => number; int: (n: number) => number } {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = (): number => Math.sqrt(-2 * Math.log(next() + 1e-12)) * Math.cos(2 * Math.PI * next());
  return { next, normal, int: (n) => Math.floor(next() * n) };
}

/** The clip ids of a synthetic pool: harmful ones named after their defect, the rest `clip-NNNN`. */
export function syntheticClipIds(clips: number, harmfulFraction: number): { ids: string[]; harmful: Set<string> } {
  const nHarmful = Math.round(clips * harmfulFraction);
  const ids: string[] = [];
  const harmful = new Set<string>();
  for (let i = 0; i < clips; i++) {
    if (i < nHarmful) {
      const id = `${HARMFUL_KINDS[i % HARMFUL_KINDS.length]!}-${String(i).padStart(4, '0')}`;
      ids.push(id);
      harmful.add(id);
    } else ids.push(`clip-${String(i).padStart(4, '0')}`);
  }
  return { ids, harmful };
}

/** Streams a synthetic run; resolves when every batch is durably committed. */
export async function streamSyntheticRun(o: SyntheticRunOptions): Promise<SyntheticRunProgress> {
  const dim = o.dim ?? 128;
  const m = o.queries ?? 4;
  const steps = o.steps ?? 200;
  const batchSize = o.batchSize ?? 16;
  const refreshEvery = o.queryRefreshEvery ?? 100;
  const r = seededRandom(o.seed ?? 7);
  const { ids, harmful } = syntheticClipIds(o.clips ?? 400, o.harmfulFraction ?? 0.08);
  // Each clip has a fixed direction: a pull toward (or, planted harmful, against) the queries' mean, plus its own noise.
  const motion = Float64Array.from({ length: dim }, () => r.normal());
  const queryIds = Array.from({ length: m }, (_, j) => `motion-query-${j}`);
  const makeQueries = (): Float32Array => {
    const q = new Float32Array(m * dim);
    for (let j = 0; j < m; j++) for (let d = 0; d < dim; d++) q[j * dim + d] = (motion[d] as number) + 0.7 * r.normal();
    return q;
  };
  const client = new MotiveClient({ address: o.address, runId: o.runId, dim, dtype: 'float16', applyWeights: true, maxUnacked: 32 });
  let batches = 0;
  let sketches = 0;
  let querySets = 0;
  const progress = (): SyntheticRunProgress => {
    let downweighted = 0;
    for (const w of client.weights().values()) if (w < 1) downweighted++;
    return { batches, sketches, querySets, weightsVersion: client.weightsVersion, downweighted };
  };
  await client.connect();
  try {
    for (let step = 0; step < steps && o.signal?.aborted !== true; step++) {
      if (step % refreshEvery === 0) {
        client.setQueries(
          step / refreshEvery + 1,
          step,
          queryIds,
          makeQueries(),
          queryIds.map(() => 'motion'),
        );
        querySets++;
      }
      // Clips already down-weighted are drawn less often, as a weighted sampler would.
      const weights = client.weights();
      const batch: string[] = [];
      while (batch.length < batchSize) {
        const id = ids[r.int(ids.length)]!;
        if (r.next() < (weights.get(id) ?? 1)) batch.push(id);
      }
      const sk = new Float32Array(batchSize * dim);
      batch.forEach((id, i) => {
        const pull = harmful.has(id) ? -1.2 : 0.25;
        for (let d = 0; d < dim; d++) sk[i * dim + d] = pull * (motion[d] as number) + 0.9 * r.normal();
      });
      const lr = 1e-3 * (0.5 + 0.5 * Math.cos((Math.PI * step) / Math.max(steps, 1000)));
      await client.send(step, lr, batch, sk);
      batches++;
      sketches += batchSize;
      o.onStep?.(step, progress());
      if ((o.stepDelayMs ?? 0) > 0) await new Promise((res) => setTimeout(res, o.stepDelayMs));
    }
    await client.flush();
    return progress();
  } finally {
    client.close();
  }
}
