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
  /** The run's feature names, in their order (for `checkShares`). */
  readonly names?: readonly string[];
  /** Features, by name, added to the check with their own share instead of entering its largest z. */
  readonly checkShares?: Readonly<Record<string, number>>;
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

/** The statistics both parts of the signal are taken under. */
export interface RefStats {
  readonly att: { median: number; sigma: number } | undefined;
  readonly fst: Array<{ median: number; sigma: number } | undefined>;
}

/** The scores' statistics over the eligible samples, each feature's over the samples with features. */
export function refStatsOf(samples: readonly RefSample[], o: RefOptions): RefStats {
  const att = refStats(samples.filter((s) => s.seen >= o.minSeen).map((s) => s.score));
  const withF = samples.filter((s) => s.features !== undefined);
  const nf = withF[0]?.features?.length ?? 0;
  return { att, fst: Array.from({ length: nf }, (_, i) => refStats(withF.map((s) => s.features![i]!))) };
}

/** One sample's check, fused z and weight under `st`. */
export function refSignalUnder(st: RefStats, s: RefSample, o: RefOptions): RefSignal {
  const { att, fst } = st;
  const nf = fst.length;
  let check: number | null = null;
  if (s.features !== undefined && nf > 0) {
    let max = -Infinity;
    let added = 0;
    for (let i = 0; i < nf; i++) {
      const f = fst[i];
      const z = f === undefined ? 0 : (s.features[i]! - f.median) / f.sigma;
      const name = o.names?.[i];
      const share = name !== undefined && o.checkShares !== undefined && name in o.checkShares ? o.checkShares[name]! : null;
      if (share === null) max = Math.max(max, z);
      else added += share * Math.max(0, z - o.checkFloorZ);
    }
    if (max === -Infinity) max = 0;
    check = Math.max(0, max - o.checkFloorZ) + added;
  }
  const fusedDefined = att !== undefined || fst.some((x) => x !== undefined);
  const za = att === undefined ? 0 : (s.score - att.median) / att.sigma;
  const fused = fusedDefined ? za - (check === null ? 0 : o.checkWeight * check) : null;
  const z = o.signal === 'attribution' ? (att === undefined ? null : za) : fused;
  let weight = 1;
  if (s.seen >= o.minSeen && z !== null) {
    weight = Math.min(1, Math.max(o.wMin, Math.exp(o.beta * z)));
    if (o.policy === 'quarantine' && z < o.quarantineZ) weight = 0;
  }
  return { check, fused, weight };
}

export function refSignal(samples: readonly RefSample[], o: RefOptions): RefSignal[] {
  const st = refStatsOf(samples, o);
  return samples.map((s) => refSignalUnder(st, s, o));
}
