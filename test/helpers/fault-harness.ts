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
 * This file is the trial driver: it streams, fires the planned kills and restarts, and hands the
 * final store to the comparison. Its parts: `fault-plan.ts` (the scenario, its reference, the
 * kill plans), `crashable-daemon.ts` (the daemon killed and restarted), `fault-compare.ts` (the
 * stored quantities against the reference).
 *
 * Used by `test/integration/fault-injection.test.ts` (a few trials) and
 * `scripts/fault-harness.ts` (the full count).
 */
import { MotiveClient } from '../../trainer-hooks/ts/index.js';
import { DaemonStartError } from './daemon.js';
import { CrashableDaemon } from './crashable-daemon.js';
import { compareSignal, compareWeights, compareWithReference, fetchSamples, runIds } from './fault-compare.js';
import {
  FEATURE_NAMES,
  PHASE_NAMES,
  TRIAL_BATCHES,
  TRIAL_DIM,
  TRIAL_RANKS,
  featuresOf,
  halfExact,
  rankDtype,
  referenceOf,
  withFeatures,
  type KillKind,
  type KillPlan,
  type KillRecord,
  type TrialPhases,
  type TrialPlan,
  type TrialResult,
} from './fault-plan.js';
import { makeScenario, streamRank } from './scenario.js';

export * from './fault-plan.js';
export { CrashableDaemon } from './crashable-daemon.js';
export { compareEmbeddings, compareSignal, compareWithReference, fetchSamples, type SampleAnswers } from './fault-compare.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

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
 *
 * Longer than 80 lines on purpose: the kill loop and the three ranks' streaming loop share the
 * trial's mutable state (what each rank sent, the kills done, the restarts' timings), which reads
 * best as one sequence; split, each part would take and return that state whole.
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
