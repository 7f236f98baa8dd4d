/**
 * An independent float64 reference of the estimator (docs/method.md), written plainly: no code
 * from daemon/ is used, so the tests compare the daemon against a second implementation.
 */

/** Plain binary16 → number. */
export function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * Math.pow(2, -24);
  if (exp === 31) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * Math.pow(2, exp - 15);
}

/** The values a daemon receives from `bytes` of the given dtype. */
export function decodeBytes(bytes: Uint8Array, dtype: 'float32' | 'float16'): number[] {
  const out: number[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === 'float16') for (let i = 0; i < bytes.byteLength; i += 2) out.push(halfToNumber(view.getUint16(i, true)));
  else for (let i = 0; i < bytes.byteLength; i += 4) out.push(view.getFloat32(i, true));
  return out;
}

function normalize(v: number[]): number[] {
  let ss = 0;
  for (const x of v) ss += x * x;
  if (ss === 0) return v.slice();
  const n = Math.sqrt(ss);
  return v.map((x) => x / n);
}

function dot(a: number[], b: number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] as number) * (b[i] as number);
  return s;
}

interface RefQuerySet {
  version: number;
  step: number;
  ids: string[];
  rows: number[][];
}

export interface RefSample {
  seen: number;
  lastStep: number;
  sums: Map<string, number>;
  g: number[];
}

export class ReferenceModel {
  readonly dim: number;
  readonly cosine: boolean;
  readonly queryIds: string[] = [];
  readonly querySets: RefQuerySet[] = [];
  readonly samples = new Map<string, RefSample>();
  private readonly committed = new Map<number, number>();

  constructor(dim: number, mode: 'cosine' | 'dot' = 'cosine') {
    this.dim = dim;
    this.cosine = mode === 'cosine';
  }

  addQuerySet(version: number, step: number, ids: string[], values: number[]): void {
    if (this.querySets.some((q) => q.version === version)) return;
    for (const id of ids) if (!this.queryIds.includes(id)) this.queryIds.push(id);
    const rows = ids.map((_, j) => {
      const r = values.slice(j * this.dim, (j + 1) * this.dim);
      return this.cosine ? normalize(r) : r;
    });
    this.querySets.push({ version, step, ids, rows });
  }

  private inForce(step: number): RefQuerySet | undefined {
    let best: RefQuerySet | undefined;
    for (const q of this.querySets) {
      if (q.step > step) continue;
      if (best === undefined || q.step > best.step || (q.step === best.step && q.version > best.version)) best = q;
    }
    return best;
  }

  /** Applies a batch once per (rank, seq), like the daemon's exactly-once rule. */
  addBatch(rank: number, seq: number, step: number, lr: number, ids: string[], values: number[]): void {
    if (seq <= (this.committed.get(rank) ?? 0)) return;
    this.committed.set(rank, seq);
    const qs = this.inForce(step);
    ids.forEach((id, i) => {
      let g = values.slice(i * this.dim, (i + 1) * this.dim);
      if (this.cosine) g = normalize(g);
      let s = this.samples.get(id);
      if (s === undefined) {
        s = { seen: 0, lastStep: step, sums: new Map(), g: new Array<number>(this.dim).fill(0) };
        this.samples.set(id, s);
      }
      s.seen += 1;
      s.lastStep = Math.max(s.lastStep, step);
      if (qs !== undefined) qs.ids.forEach((qid, j) => s.sums.set(qid, (s.sums.get(qid) ?? 0) + lr * dot(g, qs.rows[j] as number[])));
      for (let d = 0; d < this.dim; d++) s.g[d] = (s.g[d] as number) + lr * (g[d] as number);
    });
  }

  querySums(id: string): number[] {
    const s = this.samples.get(id);
    return this.queryIds.map((q) => s?.sums.get(q) ?? 0);
  }

  score(id: string): number {
    const sums = this.querySums(id);
    if (sums.length === 0) return 0;
    return sums.reduce((a, b) => a + b, 0) / sums.length;
  }

  /** numpy-style linear-interpolation percentile. */
  static percentile(values: number[], p: number): number {
    const v = [...values].sort((a, b) => a - b);
    const pos = (p / 100) * (v.length - 1);
    const lo = Math.floor(pos);
    const hi = Math.ceil(pos);
    return (v[lo] as number) + ((v[hi] as number) - (v[lo] as number)) * (pos - lo);
  }

  votes(p: number): Map<string, number> {
    const ids = [...this.samples.keys()];
    const taus = this.queryIds.map((_, j) =>
      ReferenceModel.percentile(
        ids.map((id) => this.querySums(id)[j] as number),
        p,
      ),
    );
    const out = new Map<string, number>();
    for (const id of ids) {
      const sums = this.querySums(id);
      out.set(id, taus.filter((t, j) => (sums[j] as number) > t).length);
    }
    return out;
  }

  /** <G(z), q̂> for every sample, best first. */
  attribute(query: number[]): Array<{ id: string; score: number }> {
    const q = this.cosine ? normalize(query) : query;
    return [...this.samples.entries()].map(([id, s]) => ({ id, score: dot(s.g, q) })).sort((a, b) => b.score - a.score);
  }
}

/** max |a-b| / max(|b|, floor) over arrays: relative error with a floor for values near zero. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += ((a[i] as number) - (b[i] as number)) ** 2;
    den += (b[i] as number) ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** Seeded PRNG (mulberry32) and a standard normal from it. */
export function rng(seed: number): { uniform: () => number; normal: () => number; int: (n: number) => number } {
  let a = seed >>> 0;
  const uniform = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = (): number => {
    const u = Math.max(uniform(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
  };
  return { uniform, normal, int: (n) => Math.floor(uniform() * n) };
}
