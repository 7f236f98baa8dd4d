/**
 * Ingest metrics (docs/observability.md): batches, sketches and bytes accepted, messages refused by
 * code, Ack latency, trainer streams attached and their attach/detach events. Fed by ingest's
 * observer; the attached streams are read at scrape time.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Store } from '../store/index.js';
import { ErrorCodes } from '../shared/index.js';
import { LATENCY_BUCKETS_SECONDS } from './buckets.js';

/** Codes ingest may refuse a message with: every `MOTIVE_INGEST_*` code of the registry. */
export const INGEST_REJECT_CODES: readonly string[] = Object.keys(ErrorCodes).filter((c) => c.startsWith('MOTIVE_INGEST_'));

export class IngestMetrics {
  private readonly batchesIngested: Counter<'run'>;
  private readonly sketchesIngested: Counter<'run'>;
  private readonly bytesIngested: Counter<'run'>;
  private readonly rejected: Counter<'code'>;
  private readonly ackSeconds: Histogram<'run'>;
  private readonly attachEvents: Counter<'run' | 'event'>;

  constructor(registry: Registry, store: Store, attachedCounts: () => Map<string, number>) {
    const registers = [registry];
    this.batchesIngested = new Counter({
      name: 'motive_batches_ingested_total',
      help: 'Sketch batches accepted from trainers.',
      labelNames: ['run'],
      registers,
    });
    this.sketchesIngested = new Counter({
      name: 'motive_sketches_ingested_total',
      help: 'Per-sample sketches accepted from trainers.',
      labelNames: ['run'],
      registers,
    });
    this.bytesIngested = new Counter({
      name: 'motive_ingest_bytes_total',
      help: 'Sketch payload bytes accepted from trainers.',
      labelNames: ['run'],
      registers,
    });
    this.rejected = new Counter({
      name: 'motive_ingest_rejected_total',
      help: 'Trainer messages refused, by error code.',
      labelNames: ['code'],
      registers,
    });
    // Known label values start at 0, so a dashboard panel shows 0 instead of "No data" before the first.
    for (const code of INGEST_REJECT_CODES) this.rejected.inc({ code }, 0);
    this.ackSeconds = new Histogram({
      name: 'motive_ack_latency_seconds',
      help: 'From a batch being accepted to its Ack being sent (queueing plus commit).',
      labelNames: ['run'],
      buckets: [...LATENCY_BUCKETS_SECONDS],
      registers,
    });
    this.attachEvents = new Counter({
      name: 'motive_trainer_attach_events_total',
      help: 'Trainer streams attached and detached.',
      labelNames: ['run', 'event'],
      registers,
    });
    new Gauge({
      name: 'motive_attached_trainers',
      help: 'Trainer streams attached, per run.',
      labelNames: ['run'],
      registers,
      collect() {
        this.reset();
        const attached = attachedCounts();
        for (const run of store.runs()) this.set({ run: run.info.id }, attached.get(run.info.id) ?? 0);
      },
    });
  }

  /** A batch was decoded and queued (`motive:ingest:batch-accepted`). */
  batchAccepted(runId: string, sketches: number, bytes: number): void {
    this.batchesIngested.inc({ run: runId });
    this.sketchesIngested.inc({ run: runId }, sketches);
    this.bytesIngested.inc({ run: runId }, bytes);
  }

  /** A batch's Ack left, `latencyMs` after the batch was accepted (`motive:ingest:batch-acked`). */
  batchAcked(runId: string, latencyMs: number): void {
    this.ackSeconds.observe({ run: runId }, latencyMs / 1000);
  }

  /** Ingest observer: a message was refused with `code`. */
  rejectedMessage(code: string): void {
    this.rejected.inc({ code });
  }

  /** Ingest observer: a trainer stream attached (+1) or detached (-1). */
  attached(runId: string, delta: 1 | -1): void {
    this.attachEvents.inc({ run: runId, event: delta > 0 ? 'attach' : 'detach' });
  }

  /** The run's counters, for {@link MotiveMetrics}'s label initialisation. */
  initRun(runId: string): void {
    const labels = { run: runId };
    for (const c of [this.batchesIngested, this.sketchesIngested, this.bytesIngested]) c.inc(labels, 0);
    for (const event of ['attach', 'detach']) this.attachEvents.inc({ ...labels, event }, 0);
  }
}
