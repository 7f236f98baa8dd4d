import { describe, expect, it } from 'vitest';
import { Authorizer, MotiveError } from '../../../daemon/shared/index.js';
import { decodeBatch, validateHello } from '../../../daemon/ingest/validate.js';
import type { HelloMsg, SketchBatchMsg } from '../../../daemon/ingest/proto.js';

const limits = { maxDim: 64, maxSampleIdBytes: 64, maxQueries: 8 };
const auth = new Authorizer([], null);

function hello(featureNames: string[]): HelloMsg {
  return {
    runId: 'r',
    rank: 0,
    worldSize: 1,
    projection: { kind: 'gaussian', seed: 1, dim: 2, fingerprint: 'fp' },
    dtype: 'FLOAT32',
    token: '',
    client: 't',
    applyWeights: false,
    featureNames,
    worker: false,
  };
}

function batch(features: number[]): SketchBatchMsg {
  return {
    seq: 1,
    step: 0,
    lr: 0.1,
    sampleIds: ['a', 'b'],
    sketches: Buffer.from(new Float32Array(4).buffer),
    losses: [],
    features,
    deferred: false,
    jobIds: [],
    snapshotStep: 0,
  };
}

function code(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (err) {
    return (err as MotiveError).code;
  }
}

describe('feature validation', () => {
  it('takes up to 32 unique names of 1-64 characters', () => {
    expect(validateHello(hello(['shake', 'freeze']), limits, auth).featureNames).toEqual(['shake', 'freeze']);
    expect(validateHello(hello([]), limits, auth).featureNames).toEqual([]);
    const names32 = Array.from({ length: 32 }, (_, i) => `f${i}`);
    expect(validateHello(hello(names32), limits, auth).featureNames).toHaveLength(32);
    for (const bad of [[...names32, 'f32'], ['a', 'a'], [''], ['x'.repeat(65)], ['a\u0000']]) {
      expect(
        code(() => validateHello(hello(bad), limits, auth)),
        JSON.stringify(bad),
      ).toBe('MOTIVE_INGEST_HELLO_INVALID');
    }
  });

  it('takes no features, or n x nf finite ones, as float32', () => {
    expect(decodeBatch(batch([]), 2, 'float32', limits, undefined, false, 2).features).toBeUndefined();
    expect([...decodeBatch(batch([1, 2, 3, 0.1]), 2, 'float32', limits, undefined, false, 2).features!]).toEqual([
      1,
      2,
      3,
      Math.fround(0.1),
    ]);
    for (const [values, nf] of [
      [[1, 2, 3], 2],
      [[1, 2], 0],
      [[1, 2, 3, Number.NaN], 2],
      [[1, 2, 3, Infinity], 2],
      [[1, 2, 3, 1e39], 2],
    ] as Array<[number[], number]>) {
      expect(
        code(() => decodeBatch(batch(values), 2, 'float32', limits, undefined, false, nf)),
        JSON.stringify(values),
      ).toBe('MOTIVE_INGEST_BATCH_INVALID');
    }
  });
});
