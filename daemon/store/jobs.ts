/**
 * Side-car attribution jobs (docs/wire.md, "Side-car attribution"; docs/store.md). A trainer in
 * side-car mode reports each optimizer step's (step, lr, sample ids) as a deferred batch; every
 * sample of it becomes a job, a trained (clip, step) pair not yet attributed. Workers lease jobs,
 * sketch the clips at a parameter snapshot and send the sketches back as batches naming the jobs
 * they answer.
 *
 * Exactly once: a job is a row of the `jobs` database ([runId, jobId] → { step, lr, sampleId }).
 * The group commit that logs a worker's batch removes the rows of the jobs it answers in the same
 * transaction, and a row whose job is gone (answered, dropped) is cut from the batch before it is
 * scored, so a job is counted at most once across worker resends, worker crashes and daemon
 * restarts; and since a job leaves the table only with its answer (or a counted drop), at least
 * once as long as workers keep answering. The report that creates the jobs is deduplicated by its
 * rank's (run, rank, seq) marker like any batch and writes the rows in its own group commit.
 *
 * Decisions are taken while the engine prepares a group (the "ahead" state: jobs created or gone
 * in groups prepared but not applied yet), written by its commit and applied to memory after it,
 * as the engine does with commit markers. Leases live in memory only: after a restart every
 * unanswered job can be leased again.
 *
 * Backlog: at most `maxBacklog` unanswered jobs per run. A report that would exceed it drops the
 * oldest jobs (the first reported) in its own commit and counts them (`dropped`), so workers that
 * fall behind attribute the newest steps; leases hand out the newest steps first.
 */
import type { Database, RootDatabase } from 'lmdb';
import { MotiveError } from '../shared/index.js';

/** One trained (clip, step) pair waiting for a worker's sketch. */
export interface Job {
  readonly id: number;
  readonly step: number;
  readonly lr: number;
  readonly sampleId: string;
}

/** A run's side-car counters, persisted in `jobStats` with every commit that changes them. */
export interface JobStats {
  /** The next job id to hand out (ids are never reused). */
  nextId: number;
  /** Jobs created by reports. */
  created: number;
  /** Jobs answered by a committed worker batch. */
  attributed: number;
  /** Jobs dropped by the backlog bound, never attributed. */
  dropped: number;
  /** Worker batches committed. */
  batches: number;
  /**
   * Σ over attributed jobs of |job step − snapshot step| (a snapshot after the job's step is
   * used only when every one before it was cleaned up).
   */
  stalenessSum: number;
  stalenessMax: number;
}

/** What a report will write: its new jobs and the old ones the backlog bound drops. */
export interface ReportPlan {
  readonly runId: string;
  readonly jobs: readonly Job[];
  readonly dropped: readonly number[];
}

/** What a worker batch answers (its rows cut to the jobs still open). */
export interface AnswerPlan {
  readonly runId: string;
  readonly jobIds: readonly number[];
  readonly staleness: number;
}

interface RunJobs {
  /** Unanswered jobs as applied to memory. */
  readonly pending: Map<number, Job>;
  /**
   * Job ids in creation order (ascending), open or not: leases walk it from the newest end and
   * the backlog bound from the oldest, skipping ids no longer open; compacted as it fills with those.
   */
  order: number[];
  /** Lease expiry (Date.now ms) per leased job. */
  readonly leases: Map<number, number>;
  /** Counters as applied to memory. */
  stats: JobStats;
  /** Counters as committed (ahead of memory while a commit awaits its apply). */
  persisted: JobStats;
  /** Next id to allocate while preparing (never goes back, so a failed group leaves a gap only). */
  allocate: number;
  /** Jobs created by groups prepared but not applied. */
  readonly aheadAdded: Map<number, Job>;
  /** Jobs answered or dropped by groups prepared but not applied. */
  readonly aheadGone: Set<number>;
}

const EMPTY_STATS: JobStats = { nextId: 1, created: 0, attributed: 0, dropped: 0, batches: 0, stalenessSum: 0, stalenessMax: 0 };

interface JobRow {
  step: number;
  lr: number;
  sampleId: string;
}

export class SidecarJobs {
  private readonly jobsDb: Database<JobRow, [string, number]>;
  private readonly statsDb: Database<JobStats, string>;
  private readonly runs = new Map<string, RunJobs>();
  /** Most unanswered jobs per run (config `sidecar.maxBacklog`). */
  maxBacklog = 200_000;

  constructor(root: RootDatabase) {
    this.jobsDb = root.openDB<JobRow, [string, number]>({ name: 'jobs' });
    this.statsDb = root.openDB<JobStats, string>({ name: 'jobStats' });
  }

  /** Loads the run's unanswered jobs and counters (start-up). */
  load(runId: string): void {
    const stats = this.statsDb.get(runId);
    if (stats === undefined) return;
    const r = this.state(runId);
    r.stats = { ...stats };
    r.persisted = { ...stats };
    r.allocate = stats.nextId;
    for (const { key, value } of this.jobsDb.getRange({ start: [runId], end: [`${runId}\u0000`] })) {
      r.pending.set(key[1], { id: key[1], step: value.step, lr: value.lr, sampleId: value.sampleId });
      r.order.push(key[1]);
    }
  }

  private state(runId: string): RunJobs {
    let r = this.runs.get(runId);
    if (r === undefined) {
      r = {
        pending: new Map(),
        order: [],
        leases: new Map(),
        stats: { ...EMPTY_STATS },
        persisted: { ...EMPTY_STATS },
        allocate: 1,
        aheadAdded: new Map(),
        aheadGone: new Set(),
      };
      this.runs.set(runId, r);
    }
    return r;
  }

  /** Unanswered jobs of the run, counting groups prepared ahead. */
  backlog(runId: string): number {
    const r = this.runs.get(runId);
    return r === undefined ? 0 : r.pending.size + r.aheadAdded.size - r.aheadGone.size;
  }

  /** The run's counters as applied, and its backlog and leases now. */
  stats(runId: string): (JobStats & { backlog: number; leased: number }) | undefined {
    const r = this.runs.get(runId);
    if (r === undefined) return undefined;
    const now = Date.now();
    let leased = 0;
    for (const until of r.leases.values()) if (until > now) leased++;
    return { ...r.stats, backlog: r.pending.size, leased };
  }

  /** Runs that have side-car state. */
  runIds(): string[] {
    return [...this.runs.keys()];
  }

  /** Prepare: jobs for a report's samples, and the oldest open jobs the backlog bound drops. */
  planReport(runId: string, step: number, lr: number, sampleIds: readonly string[]): ReportPlan {
    const r = this.state(runId);
    const jobs = sampleIds.map((sampleId) => ({ id: r.allocate++, step, lr, sampleId }));
    for (const j of jobs) {
      r.aheadAdded.set(j.id, j);
      r.order.push(j.id);
    }
    let excess = this.backlog(runId) - this.maxBacklog;
    const dropped: number[] = [];
    // The oldest open jobs: the first reported (a run's reports come in step order per rank).
    for (let i = 0; i < r.order.length && excess > 0; i++) {
      const id = r.order[i] as number;
      if (!open(r, id)) continue;
      dropped.push(id);
      r.aheadGone.add(id);
      excess--;
    }
    return { runId, jobs, dropped };
  }

  /**
   * Prepare: which rows of a worker batch answer a job still open (a job answered or dropped
   * already, or named twice, is cut). Throws MOTIVE_INGEST_JOB_MISMATCH when a row names a job of
   * another sample, step or learning rate; the batch is then rejected whole.
   */
  claimAnswers(
    runId: string,
    step: number,
    lr: number,
    snapshotStep: number,
    sampleIds: readonly string[],
    jobIds: readonly number[],
  ): { keep: boolean[]; plan: AnswerPlan } {
    const r = this.state(runId);
    const keep = new Array<boolean>(jobIds.length).fill(false);
    const mine = new Set<number>();
    for (let i = 0; i < jobIds.length; i++) {
      const id = jobIds[i] as number;
      const job = r.pending.get(id) ?? r.aheadAdded.get(id);
      if (job === undefined || r.aheadGone.has(id) || mine.has(id)) continue;
      if (job.sampleId !== sampleIds[i] || job.step !== step || job.lr !== lr) {
        throw new MotiveError(
          'MOTIVE_INGEST_JOB_MISMATCH',
          `job ${id} is sample ${JSON.stringify(job.sampleId)} at step ${job.step} lr ${job.lr}, the batch row is ${JSON.stringify(sampleIds[i])} at step ${step} lr ${lr}`,
        );
      }
      keep[i] = true;
      mine.add(id);
    }
    for (const id of mine) r.aheadGone.add(id);
    return { keep, plan: { runId, jobIds: [...mine], staleness: Math.abs(step - snapshotStep) } };
  }

  /** Prepare: a claimed worker batch was rejected after all; its jobs are open again. */
  unclaim(p: AnswerPlan): void {
    const r = this.state(p.runId);
    for (const id of p.jobIds) r.aheadGone.delete(id);
  }

  /** Commit: the writes of a report (new rows, dropped rows, counters). */
  reportWrites(p: ReportPlan): Array<() => unknown> {
    const r = this.state(p.runId);
    const writes: Array<() => unknown> = [];
    for (const j of p.jobs) {
      const row: JobRow = { step: j.step, lr: j.lr, sampleId: j.sampleId };
      writes.push(() => this.jobsDb.put([p.runId, j.id], row));
    }
    for (const id of p.dropped) writes.push(() => this.jobsDb.remove([p.runId, id]));
    const last = p.jobs.length === 0 ? 0 : (p.jobs[p.jobs.length - 1] as Job).id;
    const s = r.persisted;
    r.persisted = {
      ...s,
      nextId: Math.max(s.nextId, last + 1),
      created: s.created + p.jobs.length,
      dropped: s.dropped + p.dropped.length,
    };
    writes.push(this.statsWrite(p.runId, r.persisted));
    return writes;
  }

  /** Commit: the writes of a worker batch's answers (rows removed, counters). */
  answerWrites(p: AnswerPlan): Array<() => unknown> {
    const r = this.state(p.runId);
    const writes: Array<() => unknown> = p.jobIds.map((id) => () => this.jobsDb.remove([p.runId, id]));
    r.persisted = addAnswer(r.persisted, p);
    writes.push(this.statsWrite(p.runId, r.persisted));
    return writes;
  }

  private statsWrite(runId: string, stats: JobStats): () => unknown {
    const copy = { ...stats };
    return () => this.statsDb.put(runId, copy);
  }

  /** Apply: a committed report's jobs are open, its drops gone. */
  applyReport(p: ReportPlan): void {
    const r = this.state(p.runId);
    for (const j of p.jobs) {
      r.pending.set(j.id, j);
      r.aheadAdded.delete(j.id);
    }
    for (const id of p.dropped) {
      r.pending.delete(id);
      r.leases.delete(id);
      r.aheadGone.delete(id);
      r.aheadAdded.delete(id);
    }
    const last = p.jobs.length === 0 ? 0 : (p.jobs[p.jobs.length - 1] as Job).id;
    compact(r);
    r.stats = {
      ...r.stats,
      nextId: Math.max(r.stats.nextId, last + 1),
      created: r.stats.created + p.jobs.length,
      dropped: r.stats.dropped + p.dropped.length,
    };
  }

  /** Apply: a committed worker batch's jobs are answered. */
  applyAnswer(p: AnswerPlan): void {
    const r = this.state(p.runId);
    for (const id of p.jobIds) {
      r.pending.delete(id);
      r.leases.delete(id);
      r.aheadGone.delete(id);
      r.aheadAdded.delete(id);
    }
    r.stats = addAnswer(r.stats, p);
    compact(r);
  }

  /**
   * A group failed: forget what the groups prepared ahead assumed. The counters as committed are
   * read back from the store (the failed transaction wrote none of its own).
   */
  forgetAhead(): void {
    for (const [runId, r] of this.runs) {
      r.aheadAdded.clear();
      r.aheadGone.clear();
      const stored = this.statsDb.get(runId);
      r.persisted = stored === undefined ? { ...EMPTY_STATS } : { ...stored };
    }
  }

  /**
   * Leases up to `max` open jobs not leased now, the newest reports first (a step's jobs in the
   * order reported), until `now + leaseMs`. A job whose lease expires is leased again; a late
   * answer still counts once. Walks back from the newest job: the cost is the jobs it hands out,
   * the ones leased now and one step's worth more.
   */
  lease(runId: string, max: number, leaseMs: number, now = Date.now()): Job[] {
    const r = this.runs.get(runId);
    if (r === undefined) return [];
    const free: Job[] = [];
    for (let i = r.order.length - 1; i >= 0; i--) {
      const j = r.pending.get(r.order[i] as number);
      if (j === undefined || r.aheadGone.has(j.id)) continue;
      // Enough, and past the last step taken: the rest of that step is in.
      if (free.length >= max && j.step !== (free[free.length - 1] as Job).step) break;
      const until = r.leases.get(j.id);
      if (until !== undefined && until > now) continue;
      free.push(j);
    }
    free.sort((a, b) => b.step - a.step || a.id - b.id);
    const out = free.slice(0, max);
    for (const j of out) r.leases.set(j.id, now + leaseMs);
    return out;
  }

  /** Writes for a commit removing everything of the run. */
  removeWrites(runId: string): Array<() => unknown> {
    const writes: Array<() => unknown> = [() => this.statsDb.remove(runId)];
    for (const key of this.jobsDb.getKeys({ start: [runId], end: [`${runId}\u0000`] })) writes.push(() => this.jobsDb.remove(key));
    return writes;
  }

  /** Forgets the run (after its removal committed). */
  forget(runId: string): void {
    this.runs.delete(runId);
  }
}

/** Whether the job is open as far as the groups prepared so far know. */
function open(r: RunJobs, id: number): boolean {
  return (r.pending.has(id) || r.aheadAdded.has(id)) && !r.aheadGone.has(id);
}

/** Drops closed ids from `order` once they make up most of it. */
function compact(r: RunJobs): void {
  const live = r.pending.size + r.aheadAdded.size;
  if (r.order.length > 2 * live + 1024) r.order = r.order.filter((id) => r.pending.has(id) || r.aheadAdded.has(id));
}

function addAnswer(s: JobStats, p: AnswerPlan): JobStats {
  if (p.jobIds.length === 0) return s;
  return {
    ...s,
    attributed: s.attributed + p.jobIds.length,
    batches: s.batches + 1,
    stalenessSum: s.stalenessSum + p.staleness * p.jobIds.length,
    stalenessMax: Math.max(s.stalenessMax, p.staleness),
  };
}
