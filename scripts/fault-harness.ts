/**
 * Crash-safety harness, full count: `npm run test:crash` (100 trials; kept out of `npm test`,
 * which runs three in `test/integration/fault-injection.test.ts`), or `npx tsx
 * scripts/fault-harness.ts --trials N [--seed 1000] [--batches 240]`. Each trial streams a seeded
 * three-rank scenario (query refreshes, live weights, rank 1 sending FLOAT16 beside two FLOAT32
 * ranks) into a child daemon, SIGKILLs it at seeded points (random ack count, inside a widened
 * group commit with acks outstanding, right after a QuerySet), restarts it on the same store and
 * ports (restarts cycle the flusher and segment settings, so kills also land in flushes, log
 * trims and compactions), lets the clients resume and compares every stored quantity with the
 * float64 reference: counters, seen / sums / score, every G(z) coordinate, /attribute, weights
 * and the run list.
 * Prints one line per trial and a summary; exits 1 when any trial fails.
 */
import { parseArgs } from 'node:util';
import { CrashableDaemon, planTrial, runCrashTrial, type TrialResult } from '../test/helpers/fault-harness.js';

const { values } = parseArgs({
  options: {
    trials: { type: 'string', default: '24' },
    seed: { type: 'string', default: '1000' },
    batches: { type: 'string', default: '240' },
  },
});
const trials = Number(values.trials);
const seed0 = Number(values.seed);
const batches = Number(values.batches);
if (!Number.isInteger(trials) || trials < 1 || !Number.isInteger(seed0) || !Number.isInteger(batches) || batches < 3) {
  process.stderr.write('usage: fault-harness.ts --trials N [--seed S] [--batches B]\n');
  process.exit(2);
}

const plans = Array.from({ length: trials }, (_, i) => planTrial(seed0 + i, i));
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
const byKind = new Map<string, number>();
for (const k of kills) byKind.set(k.kind, (byKind.get(k.kind) ?? 0) + 1);
const withOutstanding = kills.filter((k) => k.outstanding > 0).length;
const durations = results.map((r) => r.durationMs / 1000);
process.stdout.write(
  `summary: ${passed}/${results.length} trials passed; ${kills.length} SIGKILLs (${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ')}), ` +
    `${withOutstanding} with unacknowledged batches in flight; daemon starts ${daemon.starts}; ` +
    `trial ${Math.min(...durations).toFixed(1)}–${Math.max(...durations).toFixed(1)} s, total ${((Date.now() - started) / 1000).toFixed(0)} s\n`,
);
process.exitCode = passed === results.length ? 0 : 1;
