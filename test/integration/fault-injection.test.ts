/**
 * Crash safety: a child daemon is SIGKILLed at seeded points — at a random ack count, inside a
 * widened group commit while acks are outstanding, right after a QuerySet refresh — and restarted
 * on the same store and ports; three ranks with live weights resume by themselves. The final store
 * (REST) equals the float64 reference every trial. `scripts/fault-harness.ts` runs the full count.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CrashableDaemon, formatTrial, planTrial, runCrashTrial, type TrialPlan } from '../helpers/fault-harness.js';

const SEEDS = [101, 102, 103];

describe('SIGKILL at seeded points (fault harness, reduced)', () => {
  let daemon: CrashableDaemon;
  const plans: TrialPlan[] = SEEDS.map((seed, i) => planTrial(seed, i));

  beforeAll(async () => {
    daemon = await CrashableDaemon.create();
    await daemon.start(plans[0]?.kills[0]?.commitDelayMs ?? 0);
  });
  afterAll(async () => {
    await daemon.dispose();
  });

  it.each(plans.map((p, i) => [p.kills[0]?.kind ?? 'none', p.seed, i] as const))(
    'kill %s (seed %i): the restarted store equals the reference',
    async (_kind, _seed, i) => {
      const plan = plans[i]!;
      const result = await runCrashTrial(daemon, plan, { nextCommitDelayMs: plans[i + 1]?.kills[0]?.commitDelayMs ?? 0 });
      expect(result.mismatches, formatTrial(result)).toEqual([]);
      expect(result.kills.length).toBe(plan.kills.length);
      expect(result.reconnects).toBeGreaterThan(0);
    },
    40_000,
  );
});
