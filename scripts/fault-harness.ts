/**
 * Crash-safety harness, full count: `npm run test:crash` (100 trials; `npm test` runs three in
 * `test/integration/fault-injection.test.ts`), or `npx tsx
 * scripts/fault-harness.ts --trials N [--seed 1000] [--batches 180]`. Each trial streams a seeded
 * three-rank scenario (query refreshes, live weights, per-clip features, rank 1 sending FLOAT16
 * beside two FLOAT32 ranks) into a child daemon and SIGKILLs it: from outside at seeded points
 * (a random ack count, inside a widened group commit with acks outstanding, right after a
 * QuerySet), or from inside at a crash point (`daemon/shared/crash-point.ts`: a durable group
 * commit before its Acks, a query update, a flush chunk, a log trim, compaction's copy and its
 * deletion, a weight recompute's commit). The first kill of trial i cycles through these ten;
 * half the trials get a second. The daemon restarts on the same store and ports (restarts cycle
 * the flusher and segment settings), the clients resume, and every stored quantity is compared
 * with the float64 reference: counters, seen / votes / lastStep / sums / score, every G(z)
 * coordinate, /attribute, features, fused z / check / weight, live weights and the run list.
 * Prints one line per trial and a summary with the kills per phase; exits 1 when any trial fails.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import {
  CrashableDaemon,
  TRIAL_BATCHES,
  phaseOf,
  planTrial,
  runCrashTrial,
  type KillRecord,
  type TrialResult,
} from '../test/helpers/fault-harness.js';

const { values } = parseArgs({
  options: {
    trials: { type: 'string', default: '24' },
    seed: { type: 'string', default: '1000' },
    batches: { type: 'string', default: String(TRIAL_BATCHES) },
  },
});
const trials = Number(values.trials);
const seed0 = Number(values.seed);
const batches = Number(values.batches);
if (!Number.isInteger(trials) || trials < 1 || !Number.isInteger(seed0) || !Number.isInteger(batches) || batches < 3) {
  process.stderr.write('usage: fault-harness.ts --trials N [--seed S] [--batches B]\n');
  process.exit(2);
}

const plans = Array.from({ length: trials }, (_, i) => planTrial(seed0 + i, i, batches));
const daemon = await CrashableDaemon.create();
const started = Date.now();
const results: TrialResult[] = [];
try {
  await daemon.start(plans[0]?.kills[0]?.commitDelayMs ?? 0);
  for (const [i, plan] of plans.entries()) {
    const r = await runCrashTrial(daemon, plan, {
      batches,
      nextCommitDelayMs: plans[i + 1]?.kills[0]?.commitDelayMs ?? 0,
      log: (line) => process.stdout.write(`[${String(i + 1).padStart(2)}/${trials}] ${line}\n`),
    });
    results.push(r);
  }
} finally {
  await daemon.dispose();
}
const passed = results.filter((r) => r.ok).length;
const kills = results.flatMap((r) => r.kills);
/** The phase a kill landed in: a crash point's, a timed kill inside a widened group commit (ingest) or right after a QuerySet (query). */
const phase = (k: KillRecord): string =>
  k.kind === 'point' && k.point !== undefined ? phaseOf(k.point) : k.kind === 'commit' ? 'ingest' : k.kind === 'query' ? 'query' : k.kind;
const PHASES = ['ingest', 'query', 'flush', 'compaction', 'recompute', 'random', 'idle'];
const count = (f: (k: KillRecord) => boolean): string =>
  PHASES.map((p) => [p, kills.filter((k) => phase(k) === p && f(k)).length] as const)
    .filter(([, n]) => n > 0)
    .map(([p, n]) => `${p} ${n}`)
    .join(', ');
const points = new Map<string, number>();
for (const k of kills) if (k.kind === 'point' && k.point !== undefined) points.set(k.point, (points.get(k.point) ?? 0) + 1);
const missed = kills.filter((k) => k.kind === 'idle' && k.point !== undefined).map((k) => k.point);
const withOutstanding = kills.filter((k) => k.outstanding > 0).length;
const durations = results.map((r) => r.durationMs / 1000);
const load = os
  .loadavg()
  .map((x) => x.toFixed(1))
  .join(' ');
process.stdout.write(
  `summary: ${passed}/${results.length} trials passed; ${kills.length} kills per phase: ${count(() => true)} ` +
    `(crash points: ${[...points].map(([p, n]) => `${p} ${n}`).join(', ')}; not reached: ${missed.length === 0 ? 'none' : missed.join(', ')}); ` +
    `${withOutstanding} with unacknowledged batches in flight; daemon starts ${daemon.starts}; ` +
    `trial ${Math.min(...durations).toFixed(1)}–${Math.max(...durations).toFixed(1)} s, total ${((Date.now() - started) / 1000).toFixed(0)} s; ` +
    `${os.cpus().length} cores, load average ${load}\n`,
);
process.exitCode = passed === results.length ? 0 : 1;
