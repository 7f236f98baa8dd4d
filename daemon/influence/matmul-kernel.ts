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
    const session = await ort.InferenceSession.create(matMulModel(), sessionOptions);
    const int8Session = await ort.InferenceSession.create(int8MatMulModel(), sessionOptions);
    return new MatMulKernel(session, int8Session);
  }

  /** `a[n×k] · b[k×m]` → a new Float32Array [n×m]. */
  async multiply(a: Float32Array, n: number, k: number, b: Float32Array, m: number): Promise<Float32Array> {
    if (n === 0 || m === 0) return new Float32Array(n * m);
    if (a.length < n * k || b.length < k * m) throw new MotiveError('MOTIVE_INFLUENCE_KERNEL', 'operand shorter than its shape');
    try {
      const out = await this.session.run({
        A: new ort.Tensor('float32', a.length === n * k ? a : a.subarray(0, n * k), [n, k]),
        B: new ort.Tensor('float32', b.length === k * m ? b : b.subarray(0, k * m), [k, m]),
      });
      const c = out['C'];
      if (c === undefined) throw new Error('no output C');
      return c.data as Float32Array;
    } catch (err) {
      throw new MotiveError('MOTIVE_INFLUENCE_KERNEL', (err as Error).message, { cause: err });
    }
  }

  /** `float(a8[n×k]) · b[k×m]` → a new Float32Array [n×m] (row scales not applied). */
  async multiplyInt8(a8: Int8Array, n: number, k: number, b: Float32Array, m: number): Promise<Float32Array> {
    if (n === 0 || m === 0) return new Float32Array(n * m);
    if (a8.length < n * k || b.length < k * m) throw new MotiveError('MOTIVE_INFLUENCE_KERNEL', 'operand shorter than its shape');
    try {
      const out = await this.int8Session.run({
        A8: new ort.Tensor('int8', a8.length === n * k ? a8 : a8.subarray(0, n * k), [n, k]),
        B: new ort.Tensor('float32', b.length === k * m ? b : b.subarray(0, k * m), [k, m]),
      });
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
