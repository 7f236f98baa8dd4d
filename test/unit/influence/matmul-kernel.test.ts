import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MatMulKernel } from '../../../daemon/influence/index.js';
import { rng } from '../../helpers/reference.js';

describe('onnxruntime MatMul kernel', () => {
  let kernel: MatMulKernel;
  beforeAll(async () => {
    kernel = await MatMulKernel.create({ threads: 1 });
  });
  afterAll(async () => {
    await kernel.close();
  });

  it.each([
    [1, 1, 1],
    [3, 5, 2],
    [37, 512, 8],
    [256, 64, 1],
  ])('multiplies [%i×%i]·[%i] like float64 loops', async (n, k, m) => {
    const r = rng(n * 1000 + k + m);
    const a = Float32Array.from({ length: n * k }, () => r.normal());
    const b = Float32Array.from({ length: k * m }, () => r.normal());
    const c = await kernel.multiply(a, n, k, b, m);
    expect(c).toHaveLength(n * m);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < m; j++) {
        let want = 0;
        let scale = 0;
        for (let d = 0; d < k; d++) {
          want += (a[i * k + d] as number) * (b[d * m + j] as number);
          scale += Math.abs((a[i * k + d] as number) * (b[d * m + j] as number));
        }
        expect(Math.abs((c[i * m + j] as number) - want)).toBeLessThanOrEqual(1e-5 * scale + 1e-7);
      }
    }
  });

  it('accepts operands longer than their shape (pooled buffers)', async () => {
    const a = Float32Array.from([1, 2, 3, 4, 99, 99]);
    const b = Float32Array.from([1, 1, 7]);
    expect([...(await kernel.multiply(a, 2, 2, b, 1))]).toEqual([3, 7]);
  });

  it('returns an empty result for empty shapes', async () => {
    expect(await kernel.multiply(new Float32Array(0), 0, 4, new Float32Array(8), 2)).toHaveLength(0);
  });
});
