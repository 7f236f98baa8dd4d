/**
 * Crash-safety harness, full count: `npm run test:crash` (100 trials; `npm test` runs three in
 * `test/integration/fault-injection.test.ts`), or `npx tsx scripts/fault-harness.ts --trials N
 * [--seed 1000] [--batches 180] [--lanes 2] [--tsx]`. Each trial streams a seeded
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
 *
 * The daemon runs from a bundle of its sources built once per run (test/helpers/daemon-bundle.ts;
 * `--tsx` runs bin/motived.js instead), so a restart costs Node's start and the store's recovery,
 * not compiling TypeScript. Trials run in `--lanes` independent lanes, each with its own daemon,
 * store and ports: lane j runs trials j, j + lanes, … in order, so each store holds its earlier
 * trials' runs, which every restart recovers and every trial's run list checks.
 * Prints one line per trial and a summary with the kills per phase and where the time went;
 * exits 1 when any trial fails.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { buildDaemonBundle } from '../test/helpers/daemon-bundle.js';
import {
  CrashableDaemon,
  PHASE_NAMES,
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
    lanes: { type: 'string', default: '2' },
    tsx: { type: 'boolean', default: false },
  },
});
const trials = Number(values.trials);
const seed0 = Number(values.seed);
const batches = Number(values.batches);
const lanes = Math.min(Number(values.lanes), trials);
if (
  !Number.isInteger(trials) ||
  trials < 1 ||
  !Number.isInteger(seed0) ||
  !Number.isInteger(batches) ||
  batches < 3 ||
  !Number.isInteger(lanes) ||
  lanes < 1
) {
  process.stderr.write('usage: fault-harness.ts --trials N [--seed S] [--batches B] [--lanes L] [--tsx]\n');
  process.exit(2);
}

const load = (): string =>
  os
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(' ');
const started = Date.now();
const loadAtStart = load();
const plans = Array.from({ length: trials }, (_, i) => planTrial(seed0 + i, i, batches));
const bundle = values.tsx ? undefined : await buildDaemonBundle();
const buildMs = Date.now() - started;
const daemons: CrashableDaemon[] = [];
const results: TrialResult[] = [];
try {
  for (let j = 0; j < lanes; j++) daemons.push(await CrashableDaemon.create(bundle === undefined ? {} : { entry: bundle.entry }));
  await Promise.all(
    daemons.map(async (daemon, lane) => {
      await daemon.start(plans[lane]?.kills[0]?.commitDelayMs ?? 0);
      for (let i = lane; i < trials; i += lanes) {
        const r = await runCrashTrial(daemon, plans[i]!, {
          batches,
          nextCommitDelayMs: plans[i + lanes]?.kills[0]?.commitDelayMs ?? 0,
          log: (line) => process.stdout.write(`[${String(i + 1).padStart(3)}/${trials} lane ${lane}] ${line}\n`),
        });
        results.push(r);
      }
    }),
  );
} finally {
  await Promise.all(daemons.map((d) => d.dispose()));
  bundle?.remove();
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
const wallS = (Date.now() - started) / 1000;
const quantile = (xs: number[], q: number): number =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? 0;
const starts = daemons.flatMap((d) => d.startMs);
// Mean seconds per trial in each phase; ingest is the stream less its kills, down time and restarts.
const mean = (f: (r: TrialResult) => number): string => (results.reduce((a, r) => a + f(r), 0) / results.length / 1000).toFixed(2);
const breakdown = [
  ...PHASE_NAMES.map((p) => `${p} ${mean((r) => r.phases[p])}`),
  `ingest ${mean((r) => r.phases.stream - r.phases.kill - r.phases.down - r.phases.restart)}`,
  `total ${mean((r) => r.durationMs)}`,
].join(', ');
process.stdout.write(
  `summary: ${passed}/${results.length} trials passed; ${kills.length} kills per phase: ${count(() => true)} ` +
    `(crash points: ${[...points].map(([p, n]) => `${p} ${n}`).join(', ')}; not reached: ${missed.length === 0 ? 'none' : missed.join(', ')}); ` +
    `${withOutstanding} with unacknowledged batches in flight\n` +
    `time: ${wallS.toFixed(0)} s wall for ${results.length} trials in ${lanes} lane(s) (daemon ${bundle === undefined ? 'bin/motived.js through tsx' : `bundle, built in ${(buildMs / 1000).toFixed(1)} s`}); ` +
    `trial ${Math.min(...durations).toFixed(1)}–${Math.max(...durations).toFixed(1)} s; ` +
    `${starts.length} daemon starts, to ready: median ${(quantile(starts, 0.5) / 1000).toFixed(2)} s, p90 ${(quantile(starts, 0.9) / 1000).toFixed(2)} s, max ${(quantile(starts, 1) / 1000).toFixed(2)} s\n` +
    `mean s per trial (within a lane): ${breakdown}\n` +
    `${os.cpus().length} cores, load average ${loadAtStart} at the start, ${load()} at the end\n`,
);
process.exitCode = passed === results.length ? 0 : 1;
