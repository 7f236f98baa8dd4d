/**
 * The fused signal (docs/method.md, "The fused signal") written plainly in float64, sort-based,
 * sample by sample: the reference the weighting code is checked against.
 */
export interface RefSample {
  readonly score: number;
  readonly seen: number;
  /** Features as the daemon stores them (float32 values); undefined: none. */
  readonly features?: readonly number[] | undefined;
}

export interface RefOptions {
  readonly policy: 'observe' | 'downweight' | 'quarantine';
  readonly minSeen: number;
  readonly beta: number;
  readonly wMin: number;
  readonly quarantineZ: number;
  readonly signal: 'fused' | 'attribution';
  readonly checkWeight: number;
  readonly checkFloorZ: number;
}

export interface RefSignal {
  readonly check: number | null;
  readonly fused: number | null;
  readonly weight: number;
}

function median(values: number[]): number {
  const v = [...values].sort((a, b) => a - b);
  const n = v.length;
  return n % 2 === 1 ? v[(n - 1) / 2]! : (v[n / 2 - 1]! + v[n / 2]!) / 2;
}

/** Median and 1.4826 · MAD (√(π/2) · mean absolute deviation when MAD is 0); undefined when nothing spreads. */
export function refStats(values: number[]): { median: number; sigma: number } | undefined {
  if (values.length < 2) return undefined;
  const m = median(values);
  const dev = values.map((x) => Math.abs(x - m));
  let sigma = 1.4826 * median(dev);
  if (!(sigma > 0)) sigma = Math.sqrt(Math.PI / 2) * (dev.reduce((a, b) => a + b, 0) / dev.length);
  return sigma > 0 ? { median: m, sigma } : undefined;
}

export function refSignal(samples: readonly RefSample[], o: RefOptions): RefSignal[] {
  const att = refStats(samples.filter((s) => s.seen >= o.minSeen).map((s) => s.score));
  const withF = samples.filter((s) => s.features !== undefined);
  const nf = withF[0]?.features?.length ?? 0;
  const fst = Array.from({ length: nf }, (_, i) => refStats(withF.map((s) => s.features![i]!)));
  const anyCheck = fst.some((x) => x !== undefined);
  return samples.map((s) => {
    let check: number | null = null;
    if (s.features !== undefined && nf > 0) {
      let max = -Infinity;
      for (let i = 0; i < nf; i++) {
        const st = fst[i];
        max = Math.max(max, st === undefined ? 0 : (s.features[i]! - st.median) / st.sigma);
      }
      check = Math.max(0, max - o.checkFloorZ);
    }
    const fusedDefined = att !== undefined || anyCheck;
    const za = att === undefined ? 0 : (s.score - att.median) / att.sigma;
    const fused = fusedDefined ? za - (check === null ? 0 : o.checkWeight * check) : null;
    let z: number | null;
    if (o.signal === 'attribution') z = att === undefined ? null : za;
    else z = fused;
    let weight = 1;
    if (s.seen >= o.minSeen && z !== null) {
      weight = Math.min(1, Math.max(o.wMin, Math.exp(o.beta * z)));
      if (o.policy === 'quarantine' && z < o.quarantineZ) weight = 0;
    }
    return { check, fused, weight };
  });
}
