import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { featureShares, featureStats, sampleSignal, signalWeight, type SignalStats } from '../../../daemon/weighting/fused.js';
import { robustStats } from '../../../daemon/weighting/policy.js';
import { refSignal, type RefOptions, type RefSample } from '../../helpers/fused-reference.js';

const base: RefOptions = {
  policy: 'downweight',
  minSeen: 2,
  beta: 0.5,
  wMin: 0.05,
  quarantineZ: -3,
  signal: 'fused',
  checkWeight: 1,
  checkFloorZ: 0,
};

/** The module's signal for every sample, computed the way the weighting service does. */
function moduleSignal(samples: readonly RefSample[], o: RefOptions): Array<{ check: number | null; fused: number | null; weight: number }> {
  const scores = Float64Array.from(samples, (s) => s.score);
  const eligible = Uint8Array.from(samples, (s) => (s.seen >= o.minSeen ? 1 : 0));
  const withF = samples.filter((s) => s.features !== undefined);
  const nf = withF[0]?.features?.length ?? 0;
  const rows = Float32Array.from(withF.flatMap((s) => s.features!));
  const st: SignalStats = {
    attribution: robustStats(scores, eligible),
    checks: withF.length === 0 ? [] : featureStats(rows, withF.length, nf),
    shares: featureShares(o.names ?? [], o),
  };
  return samples.map((s) => {
    const row = s.features === undefined ? undefined : Float32Array.from(s.features);
    const sig = sampleSignal(s.score, row, st, o);
    const weight = s.seen >= o.minSeen ? signalWeight(s.score, row, st, o) : 1;
    return { check: sig.check ?? null, fused: sig.fused ?? null, weight };
  });
}

function expectClose(got: ReturnType<typeof moduleSignal>, want: ReturnType<typeof refSignal>): void {
  expect(got.length).toBe(want.length);
  got.forEach((g, i) => {
    const w = want[i]!;
    for (const key of ['check', 'fused', 'weight'] as const) {
      if (w[key] === null) expect(g[key], `${key} of ${i}`).toBeNull();
      else {
        // Relative where the values are large (z of a tiny spread).
        const want = w[key];
        expect(Math.abs((g[key] as number) - want), `${key} of ${i}: ${g[key]} vs ${want}`).toBeLessThanOrEqual(
          1e-9 * Math.max(1, Math.abs(want)),
        );
      }
    }
  });
}

const f32 = (x: number): number => Math.fround(x);

describe('fused signal', () => {
  const samples: RefSample[] = [
    { score: 0.5, seen: 3, features: [0.1, 1.0] },
    { score: 0.1, seen: 3, features: [0.2, 1.1] },
    { score: -0.2, seen: 3, features: [0.15, 0.9] },
    { score: 0.3, seen: 3, features: [4.0, 1.0] }, // shaky: feature 0 stands out
    { score: -3, seen: 3 }, // harmful by attribution, no features
    { score: 0.05, seen: 3, features: [0.12, 7.5] }, // frozen: feature 1 stands out
    { score: 0.2, seen: 1, features: [0.11, 1.05] }, // not eligible
    { score: -0.1, seen: 3, features: [0.13, 0.95] },
  ].map((s) => ({ ...s, features: s.features?.map(f32) }));

  it.each([
    ['fused, downweight', base],
    ['fused, quarantine', { ...base, policy: 'quarantine' as const }],
    ['fused, floor 1, weight 2', { ...base, checkFloorZ: 1, checkWeight: 2 }],
    ['attribution', { ...base, signal: 'attribution' as const }],
    [
      'fused, the second feature added with share 0.25',
      { ...base, checkWeight: 4, names: ['accel', 'still'], checkShares: { still: 0.25 } },
    ],
    ['fused, both features added, floor 1', { ...base, checkFloorZ: 1, names: ['accel', 'still'], checkShares: { accel: 1, still: 0.5 } }],
    ['fused, a share for a feature the run lacks', { ...base, names: ['accel', 'still'], checkShares: { reversal_gap: 2 } }],
  ])('matches the plain float64 formula (%s)', (_name, o) => {
    expectClose(moduleSignal(samples, o), refSignal(samples, o));
  });

  it('down-weights the clips the checks flag, and leaves them alone under attribution', () => {
    const fused = moduleSignal(samples, base);
    const att = moduleSignal(samples, { ...base, signal: 'attribution' });
    expect(fused[3]!.weight).toBeLessThan(att[3]!.weight);
    expect(fused[5]!.weight).toBeLessThan(att[5]!.weight);
    // Without features the fused z is the score's z.
    expect(fused[4]!.weight).toBe(att[4]!.weight);
    expect(fused[6]!.weight).toBe(1);
  });

  it('weighs by the checks when the scores do not spread, and not at all when nothing spreads', () => {
    const flat = samples.map((s) => ({ ...s, score: 0 }));
    const got = moduleSignal(flat, base);
    expectClose(got, refSignal(flat, base));
    expect(got[3]!.weight).toBeLessThan(1);
    expect(moduleSignal(flat, { ...base, signal: 'attribution' }).every((g) => g.weight === 1)).toBe(true);
    const bare = flat.map((s) => ({ score: s.score, seen: s.seen }));
    expect(moduleSignal(bare, base).every((g) => g.fused === null && g.check === null && g.weight === 1)).toBe(true);
  });

  it('adds a shared feature to the largest z of the others', () => {
    // Sample 5's second feature stands out (z ≫ 0) and sample 3's first: with the second feature
    // shared, sample 5's check is its first feature's z (clamped) plus a quarter of its second's.
    const o = { ...base, checkWeight: 4, names: ['accel', 'still'], checkShares: { still: 0.25 } };
    const max = moduleSignal(samples, base);
    const shared = moduleSignal(samples, o);
    expect(shared[5]!.check!).toBeLessThan(max[5]!.check!);
    expect(shared[5]!.check!).toBeGreaterThan(0.2 * max[5]!.check!);
    expect(shared[3]!.check).toBeCloseTo(max[3]!.check!, 9);
  });

  it('matches the reference on random runs (ties, constant features, mixed presence)', () => {
    const sample = fc.record({
      score: fc.oneof(
        fc.integer({ min: -5e6, max: 5e6 }).map((x) => x / 1e6),
        fc.constantFrom(0, 1),
      ),
      seen: fc.integer({ min: 0, max: 4 }),
      has: fc.boolean(),
      f: fc.array(
        fc.oneof(
          fc.integer({ min: -1e6, max: 1e6 }).map((x) => x / 1e4),
          fc.constant(2),
        ),
        { minLength: 3, maxLength: 3 },
      ),
    });
    fc.assert(
      fc.property(
        fc.array(sample, { minLength: 1, maxLength: 40 }),
        fc.constantFrom('fused', 'attribution'),
        fc.constantFrom(0, 0.5, 2),
        fc.constantFrom(-1, 0, 1.5),
        fc.constantFrom(undefined, { c: 0.5 }, { a: 0, c: 2 }, { a: 1, b: 1, c: 1 }),
        (rows, signal, checkWeight, checkFloorZ, checkShares) => {
          const s: RefSample[] = rows.map((r) => ({ score: r.score, seen: r.seen, features: r.has ? r.f.map(f32) : undefined }));
          const o = { ...base, signal: signal, checkWeight, checkFloorZ, names: ['a', 'b', 'c'], ...(checkShares ? { checkShares } : {}) };
          expectClose(moduleSignal(s, o), refSignal(s, o));
        },
      ),
      { numRuns: 300 },
    );
  });
});
