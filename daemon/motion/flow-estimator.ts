/**
 * Runs an optical-flow ONNX model with onnxruntime-node. The shipped model is the pyramidal
 * Lucas–Kanade graph (`models/lk-flow.onnx`, rebuilt by `scripts/build-flow-model.ts`); any model
 * with the same interface can replace it: two float32 inputs `[N, C, H, W]` (frame0, frame1, in
 * that order), C = 1 (grey) or 3 (grey replicated to RGB), and a first output `[N, 2, H, W]` of
 * pixel displacements (x, y) from frame0 to frame1, e.g. an exported RAFT.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { MotiveError } from '../shared/index.js';

/** The shipped model file. */
export const SHIPPED_FLOW_MODEL = fileURLToPath(new URL('./models/lk-flow.onnx', import.meta.url));

export interface FlowEstimatorOptions {
  /** ONNX file; default {@link SHIPPED_FLOW_MODEL}. */
  readonly modelPath?: string;
  /** Input scale: 1 feeds grey levels in [0, 1], 255 in [0, 255] (RAFT exports usually want 255). Default 1. */
  readonly inputScale?: number;
  /** onnxruntime intra-op threads; 0 = one per core (default). */
  readonly threads?: number;
  /** Frame pairs per inference call, bounding memory (default 16). */
  readonly pairsPerRun?: number;
}

export class FlowEstimator {
  private readonly session: ort.InferenceSession;
  private readonly channels: number;
  private readonly inputScale: number;
  private readonly pairsPerRun: number;
  /** The model file used, for the profile's provenance. */
  readonly modelPath: string;
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(session: ort.InferenceSession, modelPath: string, channels: number, inputScale: number, pairsPerRun: number) {
    this.session = session;
    this.modelPath = modelPath;
    this.channels = channels;
    this.inputScale = inputScale;
    this.pairsPerRun = pairsPerRun;
  }

  static async create(options: FlowEstimatorOptions = {}): Promise<FlowEstimator> {
    const modelPath = options.modelPath ?? SHIPPED_FLOW_MODEL;
    let session: ort.InferenceSession;
    try {
      const bytes = await readFile(modelPath);
      const sessionOptions: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], graphOptimizationLevel: 'all' };
      if (options.threads !== undefined && options.threads > 0) sessionOptions.intraOpNumThreads = options.threads;
      session = await ort.InferenceSession.create(bytes, sessionOptions);
    } catch (err) {
      throw new MotiveError('MOTIVE_MOTION_FLOW_MODEL', `${modelPath}: ${(err as Error).message}`, { cause: err });
    }
    if (session.inputNames.length < 2 || session.outputNames.length < 1) {
      await session.release();
      throw new MotiveError('MOTIVE_MOTION_FLOW_MODEL', `${modelPath}: needs two inputs (frame0, frame1) and a flow output`);
    }
    const meta = session.inputMetadata[0];
    const c = meta?.isTensor === true ? meta.shape[1] : undefined;
    const channels = c === 3 ? 3 : 1;
    return new FlowEstimator(session, modelPath, channels, options.inputScale ?? 1, options.pairsPerRun ?? 16);
  }

  /**
   * Flow of every consecutive pair of `count` grey frames (bytes, [count × height × width]).
   * Returns float32 [(count − 1) × 2 × height × width] in pixels. Calls are serialised: one
   * session computes at a time, using all its threads.
   */
  flows(frames: Uint8Array, count: number, height: number, width: number): Promise<Float32Array> {
    const result = this.tail.then(() => this.compute(frames, count, height, width));
    this.tail = result.catch(() => undefined);
    return result;
  }

  private async compute(frames: Uint8Array, count: number, height: number, width: number): Promise<Float32Array> {
    const pixels = height * width;
    const pairs = Math.max(0, count - 1);
    const out = new Float32Array(pairs * 2 * pixels);
    const c = this.channels;
    const k = this.inputScale / 255;
    for (let start = 0; start < pairs; start += this.pairsPerRun) {
      const n = Math.min(this.pairsPerRun, pairs - start);
      const a = new Float32Array(n * c * pixels);
      const b = new Float32Array(n * c * pixels);
      for (let i = 0; i < n; i++) {
        const f0 = (start + i) * pixels;
        for (let ch = 0; ch < c; ch++) {
          const o = (i * c + ch) * pixels;
          for (let p = 0; p < pixels; p++) {
            a[o + p] = (frames[f0 + p] as number) * k;
            b[o + p] = (frames[f0 + pixels + p] as number) * k;
          }
        }
      }
      let flow: ort.Tensor | undefined;
      try {
        const [in0, in1] = this.session.inputNames as [string, string];
        const result = await this.session.run({
          [in0]: new ort.Tensor('float32', a, [n, c, height, width]),
          [in1]: new ort.Tensor('float32', b, [n, c, height, width]),
        });
        flow = result[this.session.outputNames[0] as string];
      } catch (err) {
        throw new MotiveError('MOTIVE_MOTION_FLOW_MODEL', (err as Error).message, { cause: err });
      }
      if (flow?.dims.length !== 4 || flow.dims[1] !== 2 || flow.dims[2] !== height || flow.dims[3] !== width) {
        throw new MotiveError(
          'MOTIVE_MOTION_FLOW_MODEL',
          `flow output has shape [${String(flow?.dims)}], expected [${n}, 2, ${height}, ${width}]`,
        );
      }
      out.set(flow.data as Float32Array, start * 2 * pixels);
    }
    return out;
  }

  async close(): Promise<void> {
    await this.tail;
    await this.session.release();
  }
}
