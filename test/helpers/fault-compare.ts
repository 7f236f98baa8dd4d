/**
 * The crash harness's comparison of what a daemon stored with the float64 reference, over REST
 * (fault-harness.ts): run counters and per-rank markers, every sample's seen / votes / lastStep /
 * sums / score / score history, every G(z) coordinate, a seeded /attribute ranking, the features,
 * fused z, motion check and weight of every sample, and the trainers' live weights.
 */
import type { MotiveClient } from '../../trainer-hooks/ts/index.js';
import { loadConfig } from '../../daemon/config/index.js';
import { refSignal, type RefOptions } from './fused-reference.js';
import { FEATURE_NAMES, featuresOf, sentQuerySets } from './fault-plan.js';
import { ReferenceModel, relErr, rng } from './reference.js';
import type { Scenario } from './scenario.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface RunJson {
  batches: number;
  samples: number;
  sketches: number;
  lastStep: number;
  queryIds: string[];
  querySets: Array<{ version: number; step: number }>;
  ranks: Array<{ rank: number; lastCommittedSeq: number }>;
}

interface SampleJson {
  id: string;
  score: number;
  seen: number;
  votes: number;
  lastStep: number;
  querySums: number[];
  weight: number;
  fused: number | null;
  check: number | null;
  features: Record<string, number>;
  history: Array<{ seen: number; step: number; score: number }>;
}

/**
 * What a sample's score history must be after any crash (docs/store.md, "Score history"): the
 * ordinals the thinning rule keeps for `seen` batches, exactly (a point lost or replayed twice
 * shows), each at a step of a batch that holds the sample, the newest holding the score itself.
 */
function historyProblems(g: SampleJson, steps: ReadonlySet<number>): string[] {
  let stride = 1;
  while (Math.ceil(g.seen / stride) > 31) stride *= 2;
  const want = Array.from({ length: g.seen }, (_, i) => i).filter((i) => i % stride === 0 || i === g.seen - 1);
  const got = g.history.map((p) => p.seen - 1);
  const out: string[] = [];
  if (JSON.stringify(got) !== JSON.stringify(want)) out.push(`${g.id}: history ordinals ${got.join(',')} != ${want.join(',')}`);
  const bad = g.history.filter((p) => !steps.has(p.step));
  if (bad.length > 0) out.push(`${g.id}: history steps ${bad.map((p) => p.step).join(',')} not sent with it`);
  if (g.seen > 0 && g.history.at(-1)?.score !== g.score) out.push(`${g.id}: newest history score ${g.history.at(-1)?.score} != ${g.score}`);
  return out;
}

/** The daemon's `score.votePercentile` (its default). */
const VOTE_PERCENTILE = 90;

/** The daemon's run ids, sorted. */
export async function runIds(baseUrl: string): Promise<string[]> {
  const res = await getJson(`${baseUrl}/v1/runs`);
  return (res.body as { runs: Array<{ id: string }> }).runs.map((r) => r.id).sort();
}

async function getJson(url: string, init?: RequestInit): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, init);
  return { status: res.status, body: await res.json() };
}

/** Requests kept in flight at once by the comparisons: the daemon answers while the next ones travel. */
const IN_FLIGHT = 4;

/** `f` over `items`, at most {@link IN_FLIGHT} at a time; results in the items' order. */
async function pooled<T, R>(items: readonly T[], f: (x: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await f(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, items.length) }, worker));
  return out;
}

/** Each sample's `GET /v1/runs/:run/samples/:id` answer, by id. */
export type SampleAnswers = ReadonlyMap<string, { status: number; body: unknown }>;

/** Fetches every sample's detail once, for {@link compareWithReference} and {@link compareSignal}. */
export async function fetchSamples(baseUrl: string, runId: string, ids: readonly string[]): Promise<SampleAnswers> {
  const answers = await pooled(ids, (id) => getJson(`${baseUrl}/v1/runs/${runId}/samples/${encodeURIComponent(id)}`));
  return new Map(ids.map((id, i) => [id, answers[i]!]));
}

/** The run's counters, query-set history and per-rank commit markers against the scenario. */
function runProblems(r: RunJson, scn: Scenario, ref: ReferenceModel): string[] {
  const out: string[] = [];
  const totalBatches = scn.ranks.reduce((a, b) => a + b.length, 0);
  const totalSketches = scn.ranks.reduce((a, bs) => a + bs.reduce((x, b) => x + b.ids.length, 0), 0);
  const lastStep = Math.max(...scn.ranks.flatMap((bs) => bs.map((b) => b.step)));
  if (r.batches !== totalBatches) out.push(`batches ${r.batches} != ${totalBatches}`);
  if (r.sketches !== totalSketches) out.push(`sketches ${r.sketches} != ${totalSketches}`);
  if (r.samples !== ref.samples.size) out.push(`samples ${r.samples} != ${ref.samples.size}`);
  if (r.lastStep !== lastStep) out.push(`lastStep ${r.lastStep} != ${lastStep}`);
  if (JSON.stringify(r.queryIds) !== JSON.stringify(ref.queryIds))
    out.push(`queryIds ${r.queryIds.join(',')} != ${ref.queryIds.join(',')}`);
  const versions = r.querySets.map((q) => `${q.version}@${q.step}`).join(',');
  const wantVersions = sentQuerySets(scn)
    .map((q) => `${q.version}@${q.step}`)
    .join(',');
  if (versions !== wantVersions) out.push(`querySets ${versions} != ${wantVersions}`);
  const wantRanks = scn.ranks.map((bs, rank) => ({ rank, lastCommittedSeq: bs.length }));
  if (JSON.stringify(r.ranks) !== JSON.stringify(wantRanks)) out.push(`ranks ${JSON.stringify(r.ranks)} != ${JSON.stringify(wantRanks)}`);

  return out;
}

/**
 * Compares the stored run with the reference over REST: run counters and per-rank markers, every
 * sample's seen / lastStep / querySums / score / score history, the /attribute ranking of a
 * seeded query and every G(z) coordinate. `samples`: the samples' answers if already fetched.
 */
export async function compareWithReference(
  baseUrl: string,
  runId: string,
  scn: Scenario,
  ref: ReferenceModel,
  seed: number,
  samples?: SampleAnswers,
): Promise<string[]> {
  const out: string[] = [];
  const run = await getJson(`${baseUrl}/v1/runs/${runId}`);
  if (run.status !== 200) return [`GET run: status ${run.status}`];
  out.push(...runProblems(run.body as RunJson, scn, ref));
  const stepsOf = new Map<string, Set<number>>();
  for (const b of scn.ranks.flat()) for (const id of b.ids) (stepsOf.get(id) ?? stepsOf.set(id, new Set()).get(id)!).add(b.step);
  // Votes: S_j above the run's percentile τ_j of column j; a sum within rounding of τ_j may go either way.
  const ids = [...ref.samples.keys()];
  const taus = ref.queryIds.map((_, j) =>
    ReferenceModel.percentile(
      ids.map((id) => ref.querySums(id)[j]!),
      VOTE_PERCENTILE,
    ),
  );
  const sumScale = Math.max(1e-9, ...ids.flatMap((id) => ref.querySums(id).map(Math.abs)));
  const votesWithin = (id: string, v: number): boolean => {
    const sums = ref.querySums(id);
    const tol = 1e-5 * sumScale;
    const lo = taus.filter((t, j) => sums[j]! > t + tol).length;
    const hi = taus.filter((t, j) => sums[j]! > t - tol).length;
    return v >= lo && v <= hi;
  };
  const answers = samples ?? (await fetchSamples(baseUrl, runId, ids));
  for (const [id, s] of ref.samples) {
    const got = answers.get(id) ?? { status: 0, body: undefined };
    if (got.status !== 200) {
      out.push(`${id}: status ${got.status}`);
      continue;
    }
    const g = got.body as SampleJson;
    if (g.seen !== s.seen) out.push(`${id}: seen ${g.seen} != ${s.seen}`);
    if (g.lastStep !== s.lastStep) out.push(`${id}: lastStep ${g.lastStep} != ${s.lastStep}`);
    if (!votesWithin(id, g.votes)) out.push(`${id}: votes ${g.votes} != ${ref.votes(VOTE_PERCENTILE).get(id)}`);
    const want = ref.querySums(id);
    const e = relErr(g.querySums, want);
    if (g.querySums.length !== want.length || !(e <= 1e-4)) out.push(`${id}: querySums rel err ${e}`);
    const wantScore = ref.score(id);
    if (!(Math.abs(g.score - wantScore) <= 1e-4 * Math.max(1e-6, ...want.map(Math.abs))))
      out.push(`${id}: score ${g.score} != ${wantScore}`);
    out.push(...historyProblems(g, stepsOf.get(id) ?? new Set()));
    if (out.length > 20) return out;
  }

  // /attribute: the whole ranking, best first; position i must hold a sample whose reference
  // score equals the reference's i-th score (so near-ties may swap, nothing else may).
  const qr = rng(seed ^ 0x5eed);
  const query = Array.from({ length: scn.dim }, () => qr.normal());
  const want = ref.attribute(query);
  const res = await getJson(`${baseUrl}/v1/runs/${runId}/attribute`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sketch: query, limit: want.length }),
  });
  if (res.status !== 200) return [...out, `attribute: status ${res.status}`];
  out.push(...(await compareEmbeddings(baseUrl, runId, scn.dim, ref)));
  const got = res.body as { samples: Array<{ id: string; score: number }> };
  const refScore = new Map(want.map((w) => [w.id, w.score]));
  const scale = Math.max(1e-9, ...want.map((w) => Math.abs(w.score)));
  const tol = 1e-5 * scale;
  if (got.samples.length !== want.length) out.push(`attribute: ${got.samples.length} samples != ${want.length}`);
  got.samples.forEach((s, i) => {
    const rs = refScore.get(s.id);
    const wi = want[i]?.score;
    if (rs === undefined || wi === undefined) out.push(`attribute[${i}]: unknown ${s.id}`);
    else if (Math.abs(rs - wi) > tol || Math.abs(s.score - rs) > tol)
      out.push(`attribute[${i}]: ${s.id} (${s.score}) vs ${want[i]?.id} (${wi})`);
  });
  return out;
}

/**
 * Every coordinate of every stored G(z) against the reference: /attribute with the basis query
 * e_d and every sample as the limit, so each is rescored exactly from its G(z) (cosine runs
 * normalise e_d to itself).
 */
export async function compareEmbeddings(baseUrl: string, runId: string, dim: number, ref: ReferenceModel): Promise<string[]> {
  const out: string[] = [];
  let scale = 1e-9;
  for (const s of ref.samples.values()) for (const x of s.g) scale = Math.max(scale, Math.abs(x));
  const answers = await pooled(
    Array.from({ length: dim }, (_, d) => d),
    (d) =>
      getJson(`${baseUrl}/v1/runs/${runId}/attribute`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ sketch: Array.from({ length: dim }, (_, i) => (i === d ? 1 : 0)), limit: ref.samples.size }),
      }),
  );
  for (let d = 0; d < dim && out.length < 20; d++) {
    const res = answers[d]!;
    if (res.status !== 200) return [...out, `G(z)_${d}: /attribute status ${res.status}`];
    const got = (res.body as { samples: Array<{ id: string; score: number }> }).samples;
    if (got.length !== ref.samples.size) out.push(`G(z)_${d}: ${got.length} samples != ${ref.samples.size}`);
    for (const { id, score } of got) {
      const want = ref.samples.get(id)?.g[d];
      if (want === undefined) out.push(`G(z)_${d}: unknown sample ${id}`);
      else if (!(Math.abs(score - want) <= 1e-5 * scale)) out.push(`${id}: G(z)_${d} ${score} != ${want}`);
    }
  }
  return out;
}

/** The weighting options of the harness's daemons: the configuration's defaults, read from it. */
const DEFAULT_WEIGHTS = loadConfig({ env: {} }).weights;
const WEIGHTS: RefOptions & { minDelta: number } = {
  policy: DEFAULT_WEIGHTS.policy,
  minSeen: DEFAULT_WEIGHTS.minSeen,
  beta: DEFAULT_WEIGHTS.beta,
  wMin: DEFAULT_WEIGHTS.wMin,
  quarantineZ: DEFAULT_WEIGHTS.quarantineZ,
  signal: DEFAULT_WEIGHTS.signal,
  checkWeight: DEFAULT_WEIGHTS.checkWeight,
  checkFloorZ: DEFAULT_WEIGHTS.checkFloorZ,
  minDelta: DEFAULT_WEIGHTS.minDelta,
};

/**
 * Every sample's stored features, and its fused z, motion check and weight against the fused
 * signal of the float64 reference (docs/method.md) over the final scores. A stored weight moves
 * only by more than `minDelta`, so it may lag the final recompute's value by that much.
 * `samples`: the samples' answers if already fetched (after the weights settled).
 */
export async function compareSignal(
  baseUrl: string,
  runId: string,
  ref: ReferenceModel,
  features: (id: string) => number[] = featuresOf,
  samples?: SampleAnswers,
): Promise<string[]> {
  const out: string[] = [];
  const ids = [...ref.samples.keys()];
  const answers = samples ?? (await fetchSamples(baseUrl, runId, ids));
  const want = refSignal(
    ids.map((id) => ({ score: ref.score(id), seen: ref.samples.get(id)!.seen, features: features(id) })),
    WEIGHTS,
  );
  for (const [i, id] of ids.entries()) {
    const got = answers.get(id) ?? { status: 0, body: undefined };
    if (got.status !== 200) {
      out.push(`${id}: status ${got.status}`);
      continue;
    }
    const g = got.body as SampleJson;
    const w = want[i]!;
    const f = features(id);
    if (JSON.stringify(g.features) !== JSON.stringify(Object.fromEntries(FEATURE_NAMES.map((n, j) => [n, f[j]]))))
      out.push(`${id}: features ${JSON.stringify(g.features)} != ${JSON.stringify(f)}`);
    const near = (a: number | null, b: number | null, tol: number): boolean =>
      a === null ? b === null : b !== null && Math.abs(a - b) <= tol;
    if (!near(g.fused, w.fused, 1e-3)) out.push(`${id}: fused ${g.fused} != ${w.fused}`);
    if (!near(g.check, w.check, 1e-3)) out.push(`${id}: check ${g.check} != ${w.check}`);
    if (!(Math.abs(g.weight - w.weight) <= WEIGHTS.minDelta + 1e-3)) out.push(`${id}: weight ${g.weight} != ${w.weight}`);
    if (out.length > 20) break;
  }
  return out;
}

/** Checks that every client's live weight map equals the stored weights once they settle. */
export async function compareWeights(baseUrl: string, runId: string, clients: MotiveClient[]): Promise<string[]> {
  let stored = { version: -1, weights: {} as Record<string, number> };
  let stableSince = Date.now();
  const deadline = Date.now() + 5000;
  for (;;) {
    const now = (await getJson(`${baseUrl}/v1/runs/${runId}/weights`)).body as { version: number; weights: Record<string, number> };
    if (now.version !== stored.version) {
      stored = now;
      stableSince = Date.now();
    }
    const settled = Date.now() - stableSince > 300 && clients.every((c) => c.weightsVersion === stored.version);
    if (settled || Date.now() > deadline) break;
    await sleep(50);
  }
  const out: string[] = [];
  const want = Object.entries(stored.weights)
    .filter(([, w]) => w !== 1)
    .sort(([a], [b]) => (a < b ? -1 : 1));
  clients.forEach((c, rank) => {
    if (c.weightsVersion !== stored.version) out.push(`rank ${rank}: weights version ${c.weightsVersion} != stored ${stored.version}`);
    const got = [...c.weights().entries()].sort(([a], [b]) => (a < b ? -1 : 1));
    if (JSON.stringify(got) !== JSON.stringify(want))
      out.push(`rank ${rank}: live weights (${got.length}) differ from stored (${want.length})`);
  });
  return out;
}
