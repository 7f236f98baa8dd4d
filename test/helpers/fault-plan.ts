/**
 * The crash harness's plans and scenario (fault-harness.ts): what each trial streams (three ranks
 * of mixed sketch dtypes, values exact in both, per-clip features), its float64 reference, and
 * where its kills land, seeded so that a failing seed replays.
 */
import { CRASH_PHASE, type CrashPoint } from '../../daemon/shared/crash-point.js';
import type { MotiveClient } from '../../trainer-hooks/ts/index.js';
import { ReferenceModel, decodeBytes, rng } from './reference.js';
import type { Scenario, ScenarioClient } from './scenario.js';

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
