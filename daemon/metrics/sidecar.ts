/**
 * Side-car attribution metrics (docs/observability.md): per run, the jobs not yet attributed
 * (backlog), those leased now, the jobs created, attributed (worker throughput is its rate) and
 * dropped by the backlog bound, and the staleness of the attributed ones. Read at scrape time from
 * the store's job table (daemon/store/jobs.ts); runs without side-car jobs have no series.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { JobStats, Store } from '../store/index.js';

type Stats = JobStats & { backlog: number; leased: number };

export function registerSidecarMetrics(registry: Registry, store: Store): void {
  const registers = [registry];
  const each = (f: (runId: string, s: Stats) => void): void => {
    for (const runId of store.jobs.runIds()) {
      const s = store.jobs.stats(runId);
      if (s !== undefined && store.run(runId) !== undefined) f(runId, s);
    }
  };
  const gauge = (name: string, help: string, value: (s: Stats) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: ['run'],
      registers,
      collect() {
        this.reset();
        each((run, s) => this.set({ run }, value(s)));
      },
    });
  };
  const counter = (name: string, help: string, value: (s: Stats) => number): void => {
    new Counter({
      name,
      help,
      labelNames: ['run'],
      registers,
      collect() {
        this.reset();
        each((run, s) => this.inc({ run }, value(s)));
      },
    });
  };
  gauge('motive_sidecar_backlog', 'Side-car jobs (trained clip-step pairs) not yet attributed, per run.', (s) => s.backlog);
  gauge('motive_sidecar_leased', 'Side-car jobs under a live worker lease, per run.', (s) => s.leased);
  counter('motive_sidecar_jobs_created_total', 'Side-car jobs created by trainer reports, per run.', (s) => s.created);
  counter(
    'motive_sidecar_jobs_attributed_total',
    'Side-car jobs attributed by a committed worker batch, per run (its rate is the workers throughput in clips/s).',
    (s) => s.attributed,
  );
  counter(
    'motive_sidecar_jobs_dropped_total',
    'Side-car jobs dropped by the backlog bound (sidecar.maxBacklog), never attributed.',
    (s) => s.dropped,
  );
  counter('motive_sidecar_batches_total', 'Worker batches committed, per run.', (s) => s.batches);
  counter(
    'motive_sidecar_staleness_steps_total',
    'Sum over attributed jobs of |job step - snapshot step|, per run.',
    (s) => s.stalenessSum,
  );
  gauge('motive_sidecar_staleness_max_steps', 'Largest |job step - snapshot step| of an attributed job, per run.', (s) => s.stalenessMax);
}
