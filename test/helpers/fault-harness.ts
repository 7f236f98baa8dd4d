/**
 * Crash-safety harness: a child daemon on a fixed data dir and fixed ports that is SIGKILLed at
 * seeded points while three ranks stream a scenario with query refreshes and live weights, then
 * restarted; the final store (read over REST) is compared with the float64 reference: counters,
 * every sample's seen / sums / score, every coordinate of every G(z) (/attribute with basis
 * queries), a seeded /attribute ranking, the live weights and the run list. The ranks send
 * mixed sketch dtypes (rank 1 FLOAT16, the others FLOAT32), with values exact in both.
 *
 * Used by `test/integration/fault-injection.test.ts` (a few trials) and
 * `scripts/fault-harness.ts` (the full count).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MotiveClient } from '../../trainer-hooks/ts/index.js';
import { freePort, spawnDaemon, tempDir, type ChildDaemon } from './daemon.js';
import { ReferenceModel, decodeBytes, relErr, rng } from './reference.js';
import { makeScenario, streamRank, type Scenario } from './scenario.js';

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
  | 'query';

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
}

export interface TrialPlan {
  readonly seed: number;
  readonly kills: readonly KillPlan[];
}

/** What happened to one kill. */
export interface KillRecord {
  readonly kind: KillKind | 'idle';
  readonly acksSinceStart: number;
  /** Batches sent but not acknowledged, over all ranks, at the kill. */
  readonly outstanding: number;
  readonly commitDelayMs: number;
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
}

export const TRIAL_RANKS = 3;
export const TRIAL_DIM = 64;
const KINDS: readonly KillKind[] = ['random', 'commit', 'query'];

/**
 * The seeded plan of trial `index`: its first kill cycles random → commit → query; half the
 * trials get a second, random kill after the restart.
 */
export function planTrial(seed: number, index: number): TrialPlan {
  const r = rng(seed * 7919 + 17);
  const kill = (kind: KillKind, maxAcks: number): KillPlan => ({
    kind,
    afterAcks: kind === 'query' ? 0 : 3 + r.int(maxAcks),
    delayMs: kind === 'commit' ? 2 + r.int(20) : kind === 'query' ? r.int(6) : r.int(30),
    rank: r.int(TRIAL_RANKS),
    queryVersion: 2 + r.int(2),
    commitDelayMs: kind === 'commit' ? 25 + r.int(20) : [0, 0, 2, 10][r.int(4)]!,
    downMs: r.int(300),
  });
  const kills = [kill(KINDS[index % KINDS.length]!, 150)];
  if (r.uniform() < 0.5) kills.push(kill('random', 60));
  return { seed, kills };
}

/** A child daemon that keeps its data dir and ports across SIGKILLs and restarts. */
export class CrashableDaemon {
  readonly dataDir: string;
  readonly grpcPort: number;
  readonly httpPort: number;
  private readonly configDir: { path: string; remove: () => void };
  private readonly data: { path: string; remove: () => void };
  private child: ChildDaemon | undefined;
  starts = 0;
  /** store.commitDelayMs of the running daemon. */
  commitDelayMs = 0;

  private constructor(grpcPort: number, httpPort: number) {
    this.data = tempDir('motive-fault-data-');
    this.configDir = tempDir('motive-fault-cfg-');
    this.dataDir = this.data.path;
    this.grpcPort = grpcPort;
    this.httpPort = httpPort;
  }

  static async create(): Promise<CrashableDaemon> {
    return new CrashableDaemon(await freePort(), await freePort());
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
   * Starts the daemon with weights on ({minSeen 1, intervalMs 50}) and the given extra config.
   * `fileLimitKiB` caps the size of every file it writes (RLIMIT_FSIZE, SIGXFSZ ignored), which
   * is how a full disk is simulated: the store's write fails once its file would grow past it.
   */
  async start(commitDelayMs = 0, config: Record<string, unknown> = {}, fileLimitKiB?: number): Promise<void> {
    const file = join(this.configDir.path, `config-${this.starts}.json`);
    // The flusher's settings cycle with each start, so kills land before, during and between
    // flushes and log trims, with and without ingest waiting for the flusher; commits alternate
    // between LMDB's write thread and synchronous ones.
    const v = this.starts % 3;
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
    writeFileSync(file, JSON.stringify({ weights: { minSeen: 1, intervalMs: 50 }, store, ...config }));
    this.commitDelayMs = commitDelayMs;
    this.starts++;
    const env = {
      MOTIVE_CONFIG: file,
      MOTIVE_DATA_DIR: this.dataDir,
      MOTIVE_GRPC_PORT: String(this.grpcPort),
      MOTIVE_HTTP_PORT: String(this.httpPort),
    };
    this.child = await spawnDaemon(env, fileLimitKiB === undefined ? {} : { fileLimitKiB });
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
  lastStep: number;
  querySums: number[];
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

/** The daemon's run ids, sorted. */
async function runIds(baseUrl: string): Promise<string[]> {
  const res = await getJson(`${baseUrl}/v1/runs`);
  return (res.body as { runs: Array<{ id: string }> }).runs.map((r) => r.id).sort();
}

async function getJson(url: string, init?: RequestInit): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, init);
  return { status: res.status, body: await res.json() };
}

/**
 * Compares the stored run with the reference over REST: run counters and per-rank markers, every
 * sample's seen / lastStep / querySums / score / score history, and the /attribute ranking of a
 * seeded query.
 */
export async function compareWithReference(
  baseUrl: string,
  runId: string,
  scn: Scenario,
  ref: ReferenceModel,
  seed: number,
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
  for (const [id, s] of ref.samples) {
    const got = await getJson(`${baseUrl}/v1/runs/${runId}/samples/${encodeURIComponent(id)}`);
    if (got.status !== 200) {
      out.push(`${id}: status ${got.status}`);
      continue;
    }
    const g = got.body as SampleJson;
    if (g.seen !== s.seen) out.push(`${id}: seen ${g.seen} != ${s.seen}`);
    if (g.lastStep !== s.lastStep) out.push(`${id}: lastStep ${g.lastStep} != ${s.lastStep}`);
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
  for (let d = 0; d < dim && out.length < 20; d++) {
    const sketch = Array.from({ length: dim }, (_, i) => (i === d ? 1 : 0));
    const res = await getJson(`${baseUrl}/v1/runs/${runId}/attribute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sketch, limit: ref.samples.size }),
    });
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
  /** Batches over all ranks (default 240). */
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
      batches: options.batches ?? 240,
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
        applyWeights: true,
        dtype: rankDtype(rank),
      }),
  );
  const mismatches: string[] = [];
  const records: KillRecord[] = [];
  try {
    const first = plan.kills[0];
    if (daemon.proc === undefined || (first !== undefined && daemon.commitDelayMs !== first.commitDelayMs)) {
      await daemon.stop('SIGTERM');
      await daemon.start(first?.commitDelayMs ?? 0);
    }
    const runsBefore = await runIds(daemon.baseUrl);
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
        // random / commit conditions are polled; query kills fire from the send loop.
        const poll = (async () => {
          while (!t.fired) {
            if (sendersDone && outstanding() === 0) t.fire('idle');
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
        records.push({ kind: t.kind, acksSinceStart, outstanding: outstanding(), commitDelayMs: k.commitDelayMs });
        await daemon.stop('SIGKILL');
        await sleep(k.downMs);
        const next = plan.kills[plan.kills.indexOf(k) + 1];
        acksSinceStart = 0;
        await daemon.start(next?.commitDelayMs ?? options.nextCommitDelayMs ?? 0);
      }
      current = undefined;
    })();
    // A restart that fails while the ranks still stream fails this trial (the clients are closed,
    // so the senders stop), not the whole harness with an unhandled rejection.
    killer.catch(() => clients.forEach((c) => c.close()));

    await Promise.all(
      clients.map((c, rank) =>
        streamRank(c, scn, rank, {
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
    mismatches.push(...(await compareWithReference(daemon.baseUrl, runId, scn, ref, plan.seed)));
    mismatches.push(...(await compareWeights(daemon.baseUrl, runId, clients)));
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
  };
  options.log?.(formatTrial(result));
  return result;
}

/** One line per trial: seed, kills (kind@acks/outstanding, commit delay), result. */
export function formatTrial(t: TrialResult): string {
  const kills = t.kills.map((k) => `${k.kind}@${k.acksSinceStart}acks/${k.outstanding}out/${k.commitDelayMs}ms`).join(' ');
  const head = `seed=${t.seed} ${t.ok ? 'PASS' : 'FAIL'} kills=[${kills}] reconnects=${t.reconnects} batches=${t.batches} samples=${t.samples} ${(t.durationMs / 1000).toFixed(1)}s`;
  return t.ok ? head : `${head}\n  ${t.mismatches.slice(0, 10).join('\n  ')}`;
}
