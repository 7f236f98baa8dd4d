/**
 * Crash-safety harness: a child daemon on a fixed data dir and fixed ports that is SIGKILLed at
 * seeded points — from outside, or by itself at a crash point (`MOTIVE_CRASH_AT`,
 * `daemon/shared/crash-point.ts`) in ingest, a query update, a flush, a log trim, compaction or a
 * weight recompute — while three ranks stream a scenario with query refreshes, live weights and
 * per-clip features, then restarted; the final store (read over REST) is compared with the
 * float64 reference: counters and query-set history, every sample's seen / votes / lastStep /
 * sums / score, every coordinate of every G(z) (/attribute with basis queries), a seeded
 * /attribute ranking, every sample's features, fused z, motion check and weight, the live
 * weights and the run list. The ranks send mixed sketch dtypes (rank 1 FLOAT16, the others
 * FLOAT32), with values exact in both.
 *
 * Used by `test/integration/fault-injection.test.ts` (a few trials) and
 * `scripts/fault-harness.ts` (the full count).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CRASH_PHASE, type CrashPoint } from '../../daemon/shared/crash-point.js';
import { MotiveClient } from '../../trainer-hooks/ts/index.js';
import { loadConfig } from '../../daemon/config/index.js';
import { refSignal, type RefOptions } from './fused-reference.js';
import { DaemonStartError, freePort, spawnDaemon, tempDir, type ChildDaemon } from './daemon.js';
import { ReferenceModel, decodeBytes, relErr, rng } from './reference.js';
import { makeScenario, streamRank, type Scenario, type ScenarioClient } from './scenario.js';

/** Each rank's sketch dtype: mixed precision among the ranks of one run. */
export function rankDtype(rank: number): 'float32' | 'float16' {
  return rank === 1 ? 'float16' : 'float32';
}

/**
 * The scenario with every value a multiple of 1/64 in (-8, 8): exact in float16 and float32, so
 * the reference needs no rounding model whichever dtype a rank sends.
 */
export function halfExact(scn: Scenario): Scenario {
  const q = (v: Float32Array): Float32Array => v.map((x) => Math.max(-7.9, Math.min(7.9, Math.round(x * 64) / 64)));
  return {
    dim: scn.dim,
    querySets: scn.querySets.map((s) => ({ ...s, values: q(s.values) })),
    ranks: scn.ranks.map((bs) => bs.map((b) => ({ ...b, values: q(b.values) }))),
  };
}

/** Where a kill lands. */
export type KillKind =
  /** after a seeded number of acks since the last start, plus a seeded delay */
  | 'random'
  /** while acks are outstanding, a seeded time into a widened (commitDelayMs) group commit */
  | 'commit'
  /** a seeded 0–5 ms after one rank sent a QuerySet refresh */
  | 'query'
  /** the daemon kills itself the n-th time it reaches a crash point (MOTIVE_CRASH_AT) */
  | 'point';

export interface KillPlan {
  readonly kind: KillKind;
  /** Acks since the daemon's last start before the kill may fire. */
  readonly afterAcks: number;
  /** random: delay after the ack threshold; commit: time after the last ack; query: delay after the send (ms). */
  readonly delayMs: number;
  /** query: the rank and query-set version whose send triggers the kill. */
  readonly rank: number;
  readonly queryVersion: number;
  /** store.commitDelayMs of the daemon that this kill hits. */
  readonly commitDelayMs: number;
  /** Down time before the restart (ms). */
  readonly downMs: number;
  /** point: where the daemon dies, and on which arrival there (counted from its start). */
  readonly point?: CrashPoint;
  readonly n?: number;
}

export interface TrialPlan {
  readonly seed: number;
  readonly kills: readonly KillPlan[];
}

/** What happened to one kill. */
export interface KillRecord {
  readonly kind: KillKind | 'idle';
  /** point kills: the crash point planned (reached unless kind is 'idle'). */
  readonly point?: CrashPoint;
  readonly acksSinceStart: number;
  /** Batches sent but not acknowledged, over all ranks, at the kill. */
  readonly outstanding: number;
  readonly commitDelayMs: number;
  /** How long the restart after it took, to the daemon's ready line (ms). */
  readonly restartMs: number;
}

export interface TrialResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly kills: readonly KillRecord[];
  readonly reconnects: number;
  readonly batches: number;
  readonly samples: number;
  readonly mismatches: readonly string[];
  readonly durationMs: number;
  /** Where the trial's time went (ms). */
  readonly phases: TrialPhases;
}

/**
 * Wall time of a trial's phases (ms). `stream` runs from the clients' connect to their last Ack
 * and contains `kill` (a kill to the process's exit), `down` (the planned down time) and
 * `restart` (to the ready line, recovery included); the rest of it is ingest. `prepare` is the
 * restart before the trial that arms its first crash point or commit delay.
 */
export interface TrialPhases {
  prepare: number;
  stream: number;
  kill: number;
  down: number;
  restart: number;
  /** Counters, seen, sums, scores, history, /attribute and every G(z) coordinate. */
  compare: number;
  /** Waiting for the weights to settle, then the live weights against the stored ones. */
  weights: number;
  /** Features, fused z, check and weight; the run list. */
  signal: number;
}

export const PHASE_NAMES: ReadonlyArray<keyof TrialPhases> = [
  'prepare',
  'stream',
  'kill',
  'down',
  'restart',
  'compare',
  'weights',
  'signal',
];

export const TRIAL_RANKS = 3;
export const TRIAL_DIM = 64;
/** Batches per trial over all ranks: 60 steps a rank, so every query-set version (v3 at step 50) is sent. */
export const TRIAL_BATCHES = 180;
/**
 * The first kill of trial i: three timed kinds from outside, then the crash points inside the
 * daemon, so that every phase (ingest, query update, flush, log trim, compaction, weight
 * recompute) is killed in every ten trials.
 */
const FIRST: ReadonlyArray<KillKind | CrashPoint> = [
  'random',
  'commit',
  'query',
  'ingest',
  'flush',
  'trim',
  'compact',
  'compact-remove',
  'recompute',
  'query',
];
/** Which arrival at a point the daemon dies on: 1 + a seeded int below this (reached in a trial at any load). */
const POINT_SPREAD: Readonly<Record<CrashPoint, number>> = {
  ingest: 12,
  query: 3,
  flush: 12,
  trim: 8,
  compact: 2,
  'compact-remove': 2,
  recompute: 6,
};

/**
 * The seeded plan of trial `index`: its first kill cycles through {@link FIRST} (index 9 is the
 * query-update crash point, index 2 the timed kill after a QuerySet); half the trials get a
 * second kill after the restart, random or at a crash point other than a query update (every
 * query set may be committed by then).
 */
export function planTrial(seed: number, index: number, batches = TRIAL_BATCHES): TrialPlan {
  const r = rng(seed * 7919 + 17);
  const kill = (kind: KillKind, maxAcks: number, point?: CrashPoint): KillPlan => ({
    kind,
    afterAcks: kind === 'query' || kind === 'point' ? 0 : 3 + r.int(maxAcks),
    delayMs: kind === 'commit' ? 2 + r.int(20) : kind === 'query' ? r.int(6) : r.int(30),
    rank: r.int(TRIAL_RANKS),
    queryVersion: 2 + r.int(2),
    commitDelayMs: kind === 'commit' ? 25 + r.int(20) : [0, 0, 2, 10][r.int(4)]!,
    // Clients already find the daemon down for its whole restart; this adds a little more.
    downMs: r.int(100),
    ...(point === undefined ? {} : { point, n: 1 + r.int(POINT_SPREAD[point]) }),
  });
  const first = FIRST[index % FIRST.length]!;
  // Index 2 is the timed kill after a QuerySet; index 9 the crash point of a query update.
  // Timed kills come after up to 5/8 of the trial's acks (the first) or a quarter (the second).
  const firstAcks = Math.floor((batches * 5) / 8);
  const kills = [
    index % FIRST.length === 2
      ? kill('query', firstAcks)
      : first in POINT_SPREAD
        ? kill('point', 0, first as CrashPoint)
        : kill(first as KillKind, firstAcks),
  ];
  if (r.uniform() < 0.5) {
    const points = (Object.keys(POINT_SPREAD) as CrashPoint[]).filter((p) => p !== 'query');
    kills.push(r.uniform() < 0.5 ? kill('random', Math.floor(batches / 4)) : kill('point', 0, points[r.int(points.length)]));
  }
  return { seed, kills };
}

/** The phase a point kill lands in. */
export function phaseOf(point: CrashPoint): string {
  return CRASH_PHASE[point];
}

/** A child daemon that keeps its data dir and ports across SIGKILLs and restarts. */
export class CrashableDaemon {
  readonly dataDir: string;
  readonly grpcPort: number;
  readonly httpPort: number;
  private readonly configDir: { path: string; remove: () => void };
  private readonly data: { path: string; remove: () => void };
  private child: ChildDaemon | undefined;
  /** What `node` runs: bin/motived.js, or a bundle of the same daemon (test/helpers/daemon-bundle.ts). */
  readonly entry: string | undefined;
  starts = 0;
  /** How long each start took to the ready line, recovery included (ms). */
  readonly startMs: number[] = [];
  /** store.commitDelayMs of the running daemon. */
  commitDelayMs = 0;
  /** The crash point the running daemon was started with, if any. */
  armed: CrashPoint | undefined;

  private constructor(grpcPort: number, httpPort: number, entry: string | undefined) {
    this.entry = entry;
    this.data = tempDir('motive-fault-data-');
    this.configDir = tempDir('motive-fault-cfg-');
    this.dataDir = this.data.path;
    this.grpcPort = grpcPort;
    this.httpPort = httpPort;
  }

  /** `entry`: the daemon's entry file for `node` (default bin/motived.js, through tsx's loader). */
  static async create(options: { entry?: string } = {}): Promise<CrashableDaemon> {
    return new CrashableDaemon(await freePort(), await freePort(), options.entry);
  }

  get proc(): ChildDaemon | undefined {
    return this.child;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  get address(): string {
    return `127.0.0.1:${this.grpcPort}`;
  }

  /**
   * Starts the daemon with weights on ({minSeen 1, intervalMs 50, maxRecomputeShare 1}) and the given extra config.
   * `fileLimitKiB` caps the size of every file it writes (RLIMIT_FSIZE, SIGXFSZ ignored), which
   * is how a full disk is simulated: the store's write fails once its file would grow past it.
   * `crashAt` (a {@link KillPlan}'s point and n) arms a crash point; a point of the flusher or of
   * compaction gets the smallest flush interval and segments, where those phases run most.
   */
  async start(
    commitDelayMs = 0,
    config: Record<string, unknown> = {},
    fileLimitKiB?: number,
    crashAt?: { point: CrashPoint; n: number },
  ): Promise<void> {
    const file = join(this.configDir.path, `config-${this.starts}.json`);
    // The flusher's settings cycle with each start, so kills land before, during and between
    // flushes and log trims, with and without ingest waiting for the flusher; commits alternate
    // between LMDB's write thread and synchronous ones.
    const busyStore = crashAt !== undefined && (phaseOf(crashAt.point) === 'flush' || phaseOf(crashAt.point) === 'compaction');
    const v = busyStore ? 0 : this.starts % 3;
    const store = {
      commitDelayMs,
      flushIntervalMs: [5, 50, 1000][v],
      flushChunkSamples: [16, 128, 4096][v],
      maxDirtySamples: [64, 1024, 65536][v],
      // Small segments: compaction runs (and is killed) too. Under a file-size limit (a full
      // disk) segments must not roll over below it, or the next one would start afresh.
      segmentBytes: fileLimitKiB === undefined ? [16384, 262144, 64 * 1024 ** 2][v] : 1024 ** 3,
      syncCommits: this.starts % 2 === 1,
    };
    // maxRecomputeShare 1: a recompute follows every change within intervalMs (not stretched by a
    // loaded machine's slow recomputes), so the weights settle soon after the last batch.
    const weights = { minSeen: 1, intervalMs: 50, maxRecomputeShare: 1 };
    writeFileSync(file, JSON.stringify({ weights, store, ...config }));
    this.commitDelayMs = commitDelayMs;
    this.starts++;
    const env: Record<string, string> = {
      MOTIVE_CONFIG: file,
      MOTIVE_DATA_DIR: this.dataDir,
      MOTIVE_GRPC_PORT: String(this.grpcPort),
      MOTIVE_HTTP_PORT: String(this.httpPort),
    };
    if (crashAt !== undefined) env.MOTIVE_CRASH_AT = `${crashAt.point}:${crashAt.n}`;
    this.armed = crashAt?.point;
    // A restart recovers every earlier trial's run: on a loaded machine that can take a while.
    const t0 = Date.now();
    this.child = await spawnDaemon(env, {
      readyTimeoutMs: 180_000,
      ...(fileLimitKiB === undefined ? {} : { fileLimitKiB }),
      ...(this.entry === undefined ? {} : { entry: this.entry }),
    });
    this.startMs.push(Date.now() - t0);
  }

  /** Sends `signal` and waits for the process to exit; resolves with its exit code. */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    const c = this.child;
    if (c === undefined) return null;
    c.proc.kill(signal);
    const code = await c.exited;
    this.child = undefined;
    return code;
  }

  async dispose(): Promise<void> {
    await this.stop('SIGKILL');
    this.data.remove();
    this.configDir.remove();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function f32(v: Float32Array): number[] {
  return decodeBytes(Buffer.from(v.buffer, v.byteOffset, v.byteLength), 'float32');
}

/** The query sets of `scn` that some rank reaches (step ≤ its last batch's step). */
export function sentQuerySets(scn: Scenario): Scenario['querySets'] {
  const last = Math.max(...scn.ranks.flatMap((bs) => bs.map((b) => b.step)));
  return scn.querySets.filter((q) => q.step <= last);
}

/** The float64 reference of a whole scenario (each batch once). */
export function referenceOf(scn: Scenario): ReferenceModel {
  const ref = new ReferenceModel(scn.dim);
  // A trainer sends a query set before its first batch of that step: later ones never leave.
  for (const qs of sentQuerySets(scn)) ref.addQuerySet(qs.version, qs.step, qs.ids, f32(qs.values));
  scn.ranks.forEach((bs, rank) => bs.forEach((b) => ref.addBatch(rank, b.seq, b.step, b.lr, b.ids, f32(b.values))));
  return ref;
}

/** One-shot trigger the kill conditions race to fire. */
class Trigger {
  fired = false;
  kind: KillKind | 'idle' = 'idle';
  private resolveFn: () => void = () => undefined;
  readonly promise = new Promise<void>((r) => (this.resolveFn = r));

  fire(kind: KillKind | 'idle'): void {
    if (this.fired) return;
    this.fired = true;
    this.kind = kind;
    this.resolveFn();
  }
}

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
async function runIds(baseUrl: string): Promise<string[]> {
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
  const r = run.body as RunJson;
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

/** The per-clip features every trial's ranks send (docs/wire.md). */
export const FEATURE_NAMES = ['f0', 'f1'];

/**
 * A sample's feature row: a function of its id alone (ranks of one run may commit a sample's
 * batches in any order, and the store keeps the latest row), multiples of 1/64, exact in float32.
 * Every eighth sample stands out in f1, so the motion check lowers some fused scores.
 */
export function featuresOf(id: string): number[] {
  let h = 2166136261;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 16777619) >>> 0;
  return [((h & 0xff) - 128) / 64, (h >>> 8) % 8 === 0 ? 6 + ((h >>> 16) & 0x3f) / 64 : ((h >>> 16) & 0x3f) / 64];
}

/** The client as {@link streamRank} drives it, each batch carrying its samples' feature rows. */
export function withFeatures(c: MotiveClient): ScenarioClient {
  return {
    setQueries: (version, step, ids, sketches) => c.setQueries(version, step, ids, sketches),
    send: (step, lr, ids, sketches) => c.send(step, lr, ids, sketches, [], ids.flatMap(featuresOf)),
  };
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
async function compareWeights(baseUrl: string, runId: string, clients: MotiveClient[]): Promise<string[]> {
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

export interface TrialOptions {
  /** Batches over all ranks (default {@link TRIAL_BATCHES}). */
  readonly batches?: number;
  /** store.commitDelayMs for the last restart: the first kill of the next trial needs it. */
  readonly nextCommitDelayMs?: number;
  readonly log?: (line: string) => void;
}

/**
 * Runs one trial on `daemon` (which must be running): a fresh run `trial-<seed>`, three ranks,
 * the planned kills and restarts, then the comparison. Leaves the daemon running.
 */
export async function runCrashTrial(daemon: CrashableDaemon, plan: TrialPlan, options: TrialOptions = {}): Promise<TrialResult> {
  const started = Date.now();
  const runId = `trial-${plan.seed}`;
  const scn = halfExact(
    makeScenario({
      seed: plan.seed,
      dim: TRIAL_DIM,
      queries: 4,
      ranks: TRIAL_RANKS,
      batches: options.batches ?? TRIAL_BATCHES,
      batchSize: 8,
      pool: 120,
    }),
  );
  const ref = referenceOf(scn);
  const clients = scn.ranks.map(
    (_, rank) =>
      new MotiveClient({
        address: daemon.address,
        runId,
        dim: TRIAL_DIM,
        rank,
        worldSize: TRIAL_RANKS,
        maxUnacked: 8,
        reconnectDelayMs: 50,
        maxReconnectDelayMs: 50,
        // Longer than a restart may take on a loaded machine (CrashableDaemon's ready timeout).
        reconnectTimeoutMs: 240_000,
        applyWeights: true,
        dtype: rankDtype(rank),
        featureNames: FEATURE_NAMES,
      }),
  );
  const mismatches: string[] = [];
  const records: KillRecord[] = [];
  const phases: TrialPhases = { prepare: 0, stream: 0, kill: 0, down: 0, restart: 0, compare: 0, weights: 0, signal: 0 };
  /** Runs `f`, adding its wall time to `phases[p]`. */
  const timed = async <T>(p: keyof TrialPhases, f: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    try {
      return await f();
    } finally {
      phases[p] += Date.now() - t0;
    }
  };
  /** Set when a daemon armed with a crash point died at it before it was ready (in its recovery). */
  let diedStarting = false;
  /** Starts the daemon, armed with `k`'s crash point if it has one. */
  const startFor = async (commitDelayMs: number, k: KillPlan | undefined): Promise<void> => {
    const crashAt = k?.point === undefined || k.n === undefined ? undefined : { point: k.point, n: k.n };
    try {
      await daemon.start(commitDelayMs, {}, undefined, crashAt);
    } catch (err) {
      // Only its own SIGKILL at the crash point (reached while it recovered) counts as the kill.
      if (crashAt === undefined || !(err instanceof DaemonStartError) || err.signal !== 'SIGKILL') throw err;
      diedStarting = true;
    }
  };
  try {
    const first = plan.kills[0];
    if (
      daemon.proc === undefined ||
      daemon.armed !== undefined ||
      first?.kind === 'point' ||
      (first !== undefined && daemon.commitDelayMs !== first.commitDelayMs)
    ) {
      await timed('prepare', async () => {
        await daemon.stop('SIGTERM');
        await startFor(first?.commitDelayMs ?? 0, first);
      });
    }
    const runsBefore = await runIds(daemon.baseUrl);
    const streamStart = Date.now();
    await Promise.all(clients.map((c) => c.connect()));
    let acksSinceStart = 0;
    let lastAckAt = Date.now();
    let sendersDone = false;
    let trigger = new Trigger();
    let current: KillPlan | undefined;
    const outstanding = (): number => clients.reduce((a, c) => a + c.pending, 0);
    clients.forEach((c) =>
      c.on('ack', () => {
        acksSinceStart++;
        lastAckAt = Date.now();
      }),
    );

    const killer = (async () => {
      for (const k of plan.kills) {
        current = k;
        trigger = new Trigger();
        const t = trigger;
        // A point kill fires when the daemon has died by itself.
        let died = diedStarting;
        diedStarting = false;
        if (k.kind === 'point') void daemon.proc?.exited.then(() => (died = true));
        // random / commit / point conditions are polled; query kills fire from the send loop.
        const poll = (async () => {
          while (!t.fired) {
            if (k.kind === 'point' && died) t.fire('point');
            else if (sendersDone && outstanding() === 0) t.fire('idle');
            else if (k.kind === 'random' && acksSinceStart >= k.afterAcks) {
              await sleep(k.delayMs);
              t.fire('random');
            } else if (k.kind === 'commit' && acksSinceStart >= k.afterAcks && outstanding() > 0 && Date.now() - lastAckAt >= k.delayMs) {
              t.fire('commit');
            }
            await sleep(1);
          }
        })();
        await t.promise;
        await poll;
        const record = {
          kind: t.kind,
          ...(k.point === undefined ? {} : { point: k.point }),
          acksSinceStart,
          outstanding: outstanding(),
          commitDelayMs: k.commitDelayMs,
          restartMs: 0,
        };
        records.push(record);
        await timed('kill', () => daemon.stop('SIGKILL'));
        await timed('down', () => sleep(k.downMs));
        const next = plan.kills[plan.kills.indexOf(k) + 1];
        acksSinceStart = 0;
        const restartAt = Date.now();
        await timed('restart', () => startFor(next?.commitDelayMs ?? options.nextCommitDelayMs ?? 0, next));
        record.restartMs = Date.now() - restartAt;
      }
      current = undefined;
    })();
    // A restart that fails while the ranks still stream fails this trial (the clients are closed,
    // so the senders stop), not the whole harness with an unhandled rejection.
    killer.catch(() => clients.forEach((c) => c.close()));

    await Promise.all(
      clients.map((c, rank) =>
        streamRank(withFeatures(c), scn, rank, {
          // A 'query' kill fires a few ms after this rank sent the chosen query-set version.
          afterQuerySet: async (qs) => {
            const k = current;
            if (k?.kind === 'query' && k.rank === rank && k.queryVersion === qs.version && !trigger.fired) {
              const t = trigger;
              await sleep(k.delayMs);
              t.fire('query');
            }
          },
          afterBatch: () => new Promise((r) => setImmediate(r)),
        }),
      ),
    );
    sendersDone = true;
    await killer;
    await Promise.all(clients.map((c) => c.flush(60_000)));
    phases.stream = Date.now() - streamStart;
    // The weights settle first, so one fetch of every sample serves all the comparisons.
    mismatches.push(...(await timed('weights', () => compareWeights(daemon.baseUrl, runId, clients))));
    const samples = await timed('compare', () => fetchSamples(daemon.baseUrl, runId, [...ref.samples.keys()]));
    mismatches.push(...(await timed('compare', () => compareWithReference(daemon.baseUrl, runId, scn, ref, plan.seed, samples))));
    mismatches.push(...(await timed('signal', () => compareSignal(daemon.baseUrl, runId, ref, featuresOf, samples))));
    // The run list: the runs of earlier trials and this one, none lost, none come back.
    const runsAfter = await runIds(daemon.baseUrl);
    const want = [...new Set([...runsBefore, runId])].sort();
    if (JSON.stringify(runsAfter) !== JSON.stringify(want)) mismatches.push(`runs [${runsAfter.join(',')}] != [${want.join(',')}]`);
  } catch (err) {
    mismatches.push(`error: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    clients.forEach((c) => c.close());
  }
  const result: TrialResult = {
    seed: plan.seed,
    ok: mismatches.length === 0,
    kills: records,
    reconnects: clients.reduce((a, c) => a + c.reconnects, 0),
    batches: scn.ranks.reduce((a, b) => a + b.length, 0),
    samples: ref.samples.size,
    mismatches,
    durationMs: Date.now() - started,
    phases,
  };
  options.log?.(formatTrial(result));
  return result;
}

/** One line per trial: seed, kills (kind[:point]@acks/outstanding/commit delay/restart time), result. */
export function formatTrial(t: TrialResult): string {
  const kills = t.kills
    .map(
      (k) =>
        `${k.kind}${k.point === undefined ? '' : `:${k.point}`}@${k.acksSinceStart}acks/${k.outstanding}out/${k.commitDelayMs}ms/up${(k.restartMs / 1000).toFixed(1)}s`,
    )
    .join(' ');
  const phases = PHASE_NAMES.map((p) => `${p} ${(t.phases[p] / 1000).toFixed(1)}`).join(' ');
  const head = `seed=${t.seed} ${t.ok ? 'PASS' : 'FAIL'} kills=[${kills}] reconnects=${t.reconnects} batches=${t.batches} samples=${t.samples} ${(t.durationMs / 1000).toFixed(1)}s (${phases})`;
  return t.ok ? head : `${head}\n  ${t.mismatches.slice(0, 10).join('\n  ')}`;
}
