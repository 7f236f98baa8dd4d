/**
 * The batch × queries and embeddings × query products, run by onnxruntime-node on a MatMul
 * graph built in code. Inputs are wrapped as tensors without copying.
 */
import * as ort from 'onnxruntime-node';
import { MotiveError } from '../shared/index.js';
import { int8MatMulModel, matMulModel } from './onnx-model.js';

export interface MatMulKernelOptions {
  /** Intra-op threads; 0 lets onnxruntime use one per core. */
  readonly threads: number;
}

export class MatMulKernel {
  private readonly session: ort.InferenceSession;
  private readonly int8Session: ort.InferenceSession;

  private constructor(session: ort.InferenceSession, int8Session: ort.InferenceSession) {
    this.session = session;
    this.int8Session = int8Session;
  }

  static async create(options: MatMulKernelOptions): Promise<MatMulKernel> {
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
    };
    if (options.threads > 0) sessionOptions.intraOpNumThreads = options.threads;
    // With more than one thread (influence.threads): ingest scores a small batch after every few
    // milliseconds of other work, and onnxruntime's intra-op threads spin-wait after each run by
    // default; at 30,000 sketches/s with two threads that spinning took 10-20 µs of CPU per sketch
    // (a third of the daemon's CPU on 2 cores) from the main thread and LMDB's writer. Scans run
    // their chunks back to back and keep spinning.
    const session = await ort.InferenceSession.create(matMulModel(), {
      ...sessionOptions,
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
    const int8Session = await ort.InferenceSession.create(int8MatMulModel(), sessionOptions);
    return new MatMulKernel(session, int8Session);
  }

  /** `a[n×k] · b[k×m]` → a new Float32Array [n×m]. */
  multiply(a: Float32Array, n: number, k: number, b: Float32Array, m: number): Promise<Float32Array> {
    return this.run(this.session, 'A', new ort.Tensor('float32', fit(a, n * k), [n, k]), a.length, b, n, k, m);
  }

  /** `float(a8[n×k]) · b[k×m]` → a new Float32Array [n×m] (row scales not applied). */
  multiplyInt8(a8: Int8Array, n: number, k: number, b: Float32Array, m: number): Promise<Float32Array> {
    return this.run(this.int8Session, 'A8', new ort.Tensor('int8', fit(a8, n * k), [n, k]), a8.length, b, n, k, m);
  }

  private async run(
    session: ort.InferenceSession,
    left: string,
    a: ort.Tensor,
    aLength: number,
    b: Float32Array,
    n: number,
    k: number,
    m: number,
  ): Promise<Float32Array> {
    if (n === 0 || m === 0) return new Float32Array(n * m);
    if (aLength < n * k || b.length < k * m) throw new MotiveError('MOTIVE_INFLUENCE_KERNEL', 'operand shorter than its shape');
    try {
      const out = await session.run({ [left]: a, B: new ort.Tensor('float32', fit(b, k * m), [k, m]) });
      const c = out['C'];
      if (c === undefined) throw new Error('no output C');
      return c.data as Float32Array;
    } catch (err) {
      throw new MotiveError('MOTIVE_INFLUENCE_KERNEL', (err as Error).message, { cause: err });
    }
  }

  async close(): Promise<void> {
    await this.session.release();
    await this.int8Session.release();
  }
}

/** The first `length` values as a view (operands may come from larger pooled buffers). */
function fit<T extends Float32Array | Int8Array>(x: T, length: number): T {
  return (x.length === length ? x : x.subarray(0, Math.min(length, x.length))) as T;
}
