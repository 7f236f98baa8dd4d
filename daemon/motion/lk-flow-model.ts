/* eslint-disable max-lines-per-function -- lkFlowModel builds one ONNX graph whose nodes name each other; in pieces, each would pass a dozen tensor names and the pyramid's state along. */
/**
 * The shipped optical-flow model: pyramidal (coarse-to-fine) Lucas–Kanade (Lucas & Kanade 1981;
 * Bouguet, "Pyramidal implementation of the Lucas Kanade feature tracker", 2000), built as an
 * ONNX graph from standard ops so onnxruntime runs it like any exported network:
 *
 * - pyramid: 5-tap binomial blur (Conv) then 2×2 AveragePool, `levels` levels;
 * - per level, from the coarsest: warp frame1 by the current flow (GridSample, bilinear, border),
 *   image gradients of the mean of frame0 and the warped frame1 (Scharr kernels, Conv), the
 *   structure tensor and mismatch vector averaged over a Gaussian window (grouped Conv), and the
 *   2×2 Tikhonov-regularised solve written out with elementwise ops; `iterations` refinements;
 * - the flow is doubled and bilinearly upsampled (Resize) to seed the next finer level.
 *
 * Interface (shared with any replacement model, e.g. an exported RAFT): inputs `frame0`, `frame1`
 * float32 [N, 1, H, W] grey levels in [0, 1]; output `flow` float32 [N, 2, H, W], in pixels,
 * channel 0 = x (right), channel 1 = y (down), such that frame1(p + flow(p)) ≈ frame0(p).
 * H and W must be multiples of 2^(levels − 1).
 */
import { GraphBuilder } from './onnx-builder.js';

/** Graph parameters; the defaults are the ones the shipped model is built with. */
export interface LkFlowModelOptions {
  /** Pyramid levels (default 4: motions up to about ±12 px at the finest level). */
  readonly levels: number;
  /** Lucas–Kanade refinements per level (default 2). */
  readonly iterations: number;
  /** Standard deviation of the Gaussian integration window in pixels (default 2). */
  readonly windowSigma: number;
  /** Tikhonov term added to the structure tensor's diagonal, in (grey level / px)² (default 1e-5). */
  readonly lambda: number;
  /** Largest flow update of one refinement in pixels, for stability in flat regions (default 2). */
  readonly maxStepPx: number;
}

export const LK_DEFAULTS: LkFlowModelOptions = { levels: 4, iterations: 2, windowSigma: 2, lambda: 1e-5, maxStepPx: 2 };

/** ONNX opset of the graph (GridSample needs 16). */
export const LK_OPSET = 17;

function gaussianTaps(sigma: number): number[] {
  const r = Math.ceil(2 * sigma);
  const taps = Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const total = taps.reduce((a, b) => a + b, 0);
  return taps.map((t) => t / total);
}

/** Serialised ModelProto bytes of the Lucas–Kanade flow graph. */
export function lkFlowModel(options: Partial<LkFlowModelOptions> = {}): Uint8Array {
  const o = { ...LK_DEFAULTS, ...options };
  const g = new GraphBuilder();
  const frame0 = g.input('frame0', ['N', 1, 'H', 'W']);
  const frame1 = g.input('frame1', ['N', 1, 'H', 'W']);

  const scalar = (v: number): string => g.floats([v], []);
  const zero = scalar(0);
  const one = scalar(1);
  const two = scalar(2);

  /** Edge padding, so filters see replicated borders instead of zeros. */
  const padEdge = (x: string, py: number, px: number): string => g.op('Pad', [x, g.ints([0, 0, py, px, 0, 0, py, px])], { mode: 'edge' });

  /** Separable filter applied to every one of `channels` channels on its own (group conv). */
  const separable = (x: string, taps: readonly number[], channels: number): string => {
    const r = (taps.length - 1) / 2;
    const rowK = g.floats(Array.from({ length: channels }, () => taps).flat(), [channels, 1, 1, taps.length]);
    const colK = g.floats(Array.from({ length: channels }, () => taps).flat(), [channels, 1, taps.length, 1]);
    const rows = g.op('Conv', [padEdge(x, 0, r), rowK], { group: channels });
    return g.op('Conv', [padEdge(rows, r, 0), colK], { group: channels });
  };

  // Both frames travel as the two channels of one tensor through the pyramid.
  const binomial = [1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16];
  const pyramid: string[] = [g.op('Concat', [frame0, frame1], { axis: 1 })];
  for (let l = 1; l < o.levels; l++) {
    const prev = pyramid[l - 1] as string;
    pyramid.push(g.op('AveragePool', [separable(prev, binomial, 2)], { kernel_shape: [2, 2], strides: [2, 2] }));
  }

  // Scharr derivative kernels, scaled to grey levels per pixel.
  const scharrX = [-3, 0, 3, -10, 0, 10, -3, 0, 3].map((v) => v / 32);
  const scharrY = [-3, -10, -3, 0, 0, 0, 3, 10, 3].map((v) => v / 32);
  const gradK = g.floats([...scharrX, ...scharrY], [2, 1, 3, 3]);
  const windowTaps = gaussianTaps(o.windowSigma);
  const lambda = scalar(o.lambda);
  const maxStep = scalar(o.maxStepPx);
  const minStep = scalar(-o.maxStepPx);
  const half = scalar(0.5);

  let u = '';
  let v = '';
  for (let l = o.levels - 1; l >= 0; l--) {
    const pair = pyramid[l] as string;
    const i0 = g.fresh('i0');
    const i1 = g.fresh('i1');
    g.op('Split', [pair], { axis: 1 }, [i0, i1]);
    if (l === o.levels - 1) {
      u = g.op('Mul', [i0, zero]);
      v = g.op('Mul', [i0, zero]);
    } else {
      const up = (x: string): string => g.op('Resize', [g.op('Mul', [x, two]), '', g.floats([1, 1, 2, 2], [4])], { mode: 'linear' });
      u = up(u);
      v = up(v);
    }
    // Sampling grid in GridSample's normalised coordinates (align_corners = 1): x·2/(W−1) − 1.
    const shape = g.op('Shape', [i0]);
    const hF = g.op('Cast', [g.op('Gather', [shape, g.ints([2], [])])], { to: 1 });
    const wF = g.op('Cast', [g.op('Gather', [shape, g.ints([3], [])])], { to: 1 });
    const sx = g.op('Div', [two, g.op('Sub', [wF, one])]);
    const sy = g.op('Div', [two, g.op('Sub', [hF, one])]);
    const xs = g.op('Reshape', [g.op('Range', [zero, wF, one]), g.ints([1, 1, 1, -1])]);
    const ys = g.op('Reshape', [g.op('Range', [zero, hF, one]), g.ints([1, 1, -1, 1])]);
    const baseX = g.op('Sub', [g.op('Mul', [xs, sx]), one]);
    const baseY = g.op('Sub', [g.op('Mul', [ys, sy]), one]);

    for (let k = 0; k < o.iterations; k++) {
      const gx = g.op('Add', [g.op('Mul', [u, sx]), baseX]);
      const gy = g.op('Add', [g.op('Mul', [v, sy]), baseY]);
      const grid = g.op('Transpose', [g.op('Concat', [gx, gy], { axis: 1 })], { perm: [0, 2, 3, 1] });
      const warped = g.op('GridSample', [i1, grid], { mode: 'bilinear', padding_mode: 'border', align_corners: 1 });
      const it = g.op('Sub', [warped, i0]);
      const mean = g.op('Mul', [g.op('Add', [i0, warped]), half]);
      const grads = g.op('Conv', [padEdge(mean, 1, 1), gradK]);
      const ix = g.fresh('ix');
      const iy = g.fresh('iy');
      g.op('Split', [grads], { axis: 1 }, [ix, iy]);
      const products = g.op(
        'Concat',
        [g.op('Mul', [ix, ix]), g.op('Mul', [ix, iy]), g.op('Mul', [iy, iy]), g.op('Mul', [ix, it]), g.op('Mul', [iy, it])],
        { axis: 1 },
      );
      const sums = separable(products, windowTaps, 5);
      const [sxx, sxy, syy, sxt, syt] = ['sxx', 'sxy', 'syy', 'sxt', 'syt'].map((p) => g.fresh(p)) as [
        string,
        string,
        string,
        string,
        string,
      ];
      g.op('Split', [sums], { axis: 1 }, [sxx, sxy, syy, sxt, syt]);
      const a = g.op('Add', [sxx, lambda]);
      const c = g.op('Add', [syy, lambda]);
      const det = g.op('Sub', [g.op('Mul', [a, c]), g.op('Mul', [sxy, sxy])]);
      // [a b; b c]·[du dv]ᵀ = −[sxt syt]ᵀ, inverted in closed form.
      const du = g.op('Div', [g.op('Sub', [g.op('Mul', [sxy, syt]), g.op('Mul', [c, sxt])]), det]);
      const dv = g.op('Div', [g.op('Sub', [g.op('Mul', [sxy, sxt]), g.op('Mul', [a, syt])]), det]);
      u = g.op('Add', [u, g.op('Clip', [du, minStep, maxStep])]);
      v = g.op('Add', [v, g.op('Clip', [dv, minStep, maxStep])]);
    }
  }
  g.op('Concat', [u, v], { axis: 1 }, ['flow']);
  g.output('flow', ['N', 2, 'H', 'W']);
  const doc = `Pyramidal Lucas-Kanade optical flow: levels=${o.levels} iterations=${o.iterations} windowSigma=${o.windowSigma} lambda=${o.lambda} maxStepPx=${o.maxStepPx}`;
  return g.model('motive_lk_flow', LK_OPSET, doc);
}
