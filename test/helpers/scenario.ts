/** Seeded synthetic attribution streams for the tests: query-set versions and per-rank batches. */
import { rng } from './reference.js';

export interface ScenarioQuerySet {
  version: number;
  step: number;
  ids: string[];
  values: Float32Array;
}

export interface ScenarioBatch {
  seq: number;
  step: number;
  lr: number;
  ids: string[];
  values: Float32Array;
}

export interface Scenario {
  dim: number;
  querySets: ScenarioQuerySet[];
  ranks: ScenarioBatch[][];
}

export interface ScenarioOptions {
  seed: number;
  dim: number;
  queries: number;
  ranks: number;
  batches: number;
  batchSize: number;
  pool: number;
}

/**
 * Query sets: v1 at step 5 (q0..q{m-1}), v2 at step 30 (same ids, new sketches), v3 at step 50
 * (drops two ids, adds two new ones). Batches before step 5 meet no query set.
 * `batches` is the total over all ranks; rank r sends its b-th batch at step b.
 */
export function makeScenario(o: ScenarioOptions): Scenario {
  const r = rng(o.seed);
  const vec = (n: number): Float32Array => Float32Array.from({ length: n * o.dim }, () => r.normal());
  const base = Array.from({ length: o.queries }, (_, j) => `q${j}`);
  const v3 = [...base.slice(0, o.queries - 2), `q${o.queries}`, `q${o.queries + 1}`];
  const querySets: ScenarioQuerySet[] = [
    { version: 1, step: 5, ids: base, values: vec(o.queries) },
    { version: 2, step: 30, ids: base, values: vec(o.queries) },
    { version: 3, step: 50, ids: v3, values: vec(v3.length) },
  ];
  const ranks: ScenarioBatch[][] = Array.from({ length: o.ranks }, () => []);
  for (let b = 0; b < o.batches; b++) {
    const rank = b % o.ranks;
    const list = ranks[rank] as ScenarioBatch[];
    const step = list.length;
    const ids = Array.from({ length: o.batchSize }, () => `clip-${String(r.int(o.pool)).padStart(4, '0')}`);
    list.push({ seq: list.length + 1, step, lr: 1e-3 * (1 + 0.5 * Math.cos(step / 7)), ids, values: vec(o.batchSize) });
  }
  return { dim: o.dim, querySets, ranks };
}

/** What {@link streamRank} needs of a trainer client. */
export interface ScenarioClient {
  setQueries(version: number, step: number, ids: string[], sketches: Float32Array): void;
  send(step: number, lr: number, ids: string[], sketches: Float32Array): Promise<number>;
}

/**
 * Streams one rank's batches in order, sending each query-set version before the rank's first
 * batch at or after its step (docs/wire.md: every rank sends it before its own batches). Hooks
 * run after a query set is sent, before each batch and after each batch.
 */
export async function streamRank(
  client: ScenarioClient,
  scn: Scenario,
  rank: number,
  hooks: {
    afterQuerySet?: (qs: ScenarioQuerySet) => Promise<void> | void;
    beforeBatch?: (b: ScenarioBatch) => void;
    afterBatch?: (b: ScenarioBatch) => Promise<void> | void;
  } = {},
): Promise<void> {
  const sent = new Set<number>();
  for (const b of scn.ranks[rank] ?? []) {
    for (const qs of scn.querySets) {
      if (qs.step > b.step || sent.has(qs.version)) continue;
      client.setQueries(qs.version, qs.step, qs.ids, qs.values);
      sent.add(qs.version);
      await hooks.afterQuerySet?.(qs);
    }
    hooks.beforeBatch?.(b);
    await client.send(b.step, b.lr, b.ids, b.values);
    await hooks.afterBatch?.(b);
  }
}
