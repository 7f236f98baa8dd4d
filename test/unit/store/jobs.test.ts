/**
 * The side-car job table (daemon/store/jobs.ts) on a real LMDB environment: prepare / commit /
 * apply as the engine drives it, leases and their expiry, the backlog bound, a failed group
 * forgotten, and what a restart loads.
 */
import { open, type RootDatabase } from 'lmdb';
import { afterEach, describe, expect, it } from 'vitest';
import { SidecarJobs, type AnswerPlan, type ReportPlan } from '../../../daemon/store/jobs.js';
import { tempDir } from '../../helpers/daemon.js';

const dirs: Array<{ remove: () => void }> = [];
const roots: RootDatabase[] = [];
afterEach(async () => {
  for (const r of roots.splice(0)) await r.close();
  for (const d of dirs.splice(0)) d.remove();
});

function env(path?: string): { root: RootDatabase; path: string } {
  let p = path;
  if (p === undefined) {
    const d = tempDir('motive-jobs-');
    dirs.push(d);
    p = d.path;
  }
  const root = open({ path: p, maxDbs: 4 });
  roots.push(root);
  return { root, path: p };
}

/** One group as the engine runs it: the writes in one transaction, then the apply. */
async function commit(root: RootDatabase, jobs: SidecarJobs, plan: ReportPlan | AnswerPlan): Promise<void> {
  const writes = 'jobs' in plan ? jobs.reportWrites(plan) : jobs.answerWrites(plan);
  await root.transaction(() => {
    for (const w of writes) w();
  });
  if ('jobs' in plan) jobs.applyReport(plan);
  else jobs.applyAnswer(plan);
}

describe('SidecarJobs', () => {
  it('creates, leases, answers once, expires leases and reloads what was committed', async () => {
    const { root, path } = env();
    const jobs = new SidecarJobs(root);
    const r1 = jobs.planReport('run', 0, 0.5, ['a', 'b']);
    const r2 = jobs.planReport('run', 1, 0.25, ['a']);
    expect(jobs.backlog('run')).toBe(3); // counted while prepared
    await commit(root, jobs, r1);
    await commit(root, jobs, r2);
    const leased = jobs.lease('run', 2, 1000, 10_000);
    expect(leased.map((j) => [j.step, j.sampleId])).toEqual([
      [1, 'a'],
      [0, 'a'],
    ]);
    expect(jobs.lease('run', 5, 1000, 10_500).map((j) => j.sampleId)).toEqual(['b']);
    expect(jobs.lease('run', 5, 1000, 10_600)).toEqual([]);
    // expired: leased again
    expect(jobs.lease('run', 5, 1000, 11_001).map((j) => j.id)).toEqual(leased.map((j) => j.id));

    const ids = r1.jobs.map((j) => j.id);
    const first = jobs.claimAnswers('run', 0, 0.5, 0, ['a', 'b'], ids);
    expect(first.keep).toEqual([true, true]);
    // a second answer prepared before the first is applied: nothing left to claim
    expect(jobs.claimAnswers('run', 0, 0.5, 0, ['a', 'b'], ids).plan.jobIds).toEqual([]);
    await commit(root, jobs, first.plan);
    expect(jobs.claimAnswers('run', 0, 0.5, 0, ['b'], [ids[1] as number]).keep).toEqual([false]);
    // a row naming an open job of another sample or lr
    const open = r2.jobs[0]!.id;
    expect(() => jobs.claimAnswers('run', 1, 0.25, 1, ['zz'], [open])).toThrow(/MOTIVE_INGEST_JOB_MISMATCH|job/);
    expect(() => jobs.claimAnswers('run', 1, 0.5, 1, ['a'], [open])).toThrow();
    const stale = jobs.claimAnswers('run', 1, 0.25, 0, ['a'], [open]);
    jobs.unclaim(stale.plan); // rejected later in its group: open again
    expect(jobs.backlog('run')).toBe(1);
    expect(jobs.stats('run')).toMatchObject({ created: 3, attributed: 2, batches: 1, stalenessSum: 0, backlog: 1 });

    // a restart loads the open job and the counters, and hands out new ids above the old
    const again = new SidecarJobs(env(path).root);
    again.load('run');
    expect(again.stats('run')).toMatchObject({ created: 3, attributed: 2, dropped: 0, backlog: 1, nextId: 4 });
    expect(again.lease('run', 5, 1000).map((j) => j.id)).toEqual([open]);
    expect(again.planReport('run', 2, 0.1, ['c']).jobs[0]!.id).toBe(4);
  });

  it('drops the oldest open jobs past maxBacklog, and forgets a failed group', async () => {
    const { root } = env();
    const jobs = new SidecarJobs(root);
    jobs.maxBacklog = 3;
    const a = jobs.planReport('run', 0, 0.1, ['a', 'b']);
    await commit(root, jobs, a);
    const b = jobs.planReport('run', 1, 0.1, ['c', 'd']);
    expect(b.dropped).toEqual([a.jobs[0]!.id]);
    await commit(root, jobs, b);
    expect(jobs.stats('run')).toMatchObject({ created: 4, dropped: 1, backlog: 3 });
    // a group whose transaction never commits: its plan is forgotten, the counters read back
    const lost = jobs.planReport('run', 2, 0.1, ['e', 'f']);
    jobs.reportWrites(lost); // built, never written
    jobs.forgetAhead();
    expect(jobs.backlog('run')).toBe(3);
    const next = jobs.planReport('run', 3, 0.1, ['g']);
    expect(next.dropped).toEqual([a.jobs[1]!.id]);
    await commit(root, jobs, next);
    expect(jobs.stats('run')).toMatchObject({ created: 5, dropped: 2, backlog: 3 });
    expect(jobs.lease('run', 10, 1000).map((j) => j.sampleId)).toEqual(['g', 'c', 'd']);
    // what is on disk agrees: the lost group's counts never reached it
    const reloaded = new SidecarJobs(root);
    reloaded.load('run');
    expect(reloaded.stats('run')).toMatchObject({ created: 5, dropped: 2, backlog: 3 });
  });
});
