/**
 * Store metrics (docs/observability.md): its size, the samples and log entries not flushed yet,
 * the flusher's work and the runs it holds. Read at scrape time from the store.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Store } from '../store/index.js';

export function registerStoreMetrics(registry: Registry, store: Store): void {
  const registers = [registry];
  new Gauge({
    name: 'motive_store_size_bytes',
    help: 'Bytes the embedded store occupies.',
    registers,
    collect() {
      this.set(store.sizeBytes());
    },
  });
  new Gauge({
    name: 'motive_store_dirty_samples',
    help: 'Samples whose newest state is only in the write-ahead log and in memory (not flushed yet).',
    registers,
    collect() {
      this.set(store.flushStats().dirtySamples);
    },
  });
  new Gauge({
    name: 'motive_store_log_entries',
    help: 'Write-ahead log entries not trimmed yet.',
    registers,
    collect() {
      this.set(store.flushStats().logEntries);
    },
  });
  new Counter({
    name: 'motive_store_flushed_samples_total',
    help: 'Sample records and weight entries written by the flusher.',
    registers,
    collect() {
      this.reset();
      this.inc(store.flushStats().samplesFlushed);
    },
  });
  new Counter({
    name: 'motive_store_compacted_bytes_total',
    help: 'Bytes of superseded sample records and weight entries reclaimed by record-segment compaction.',
    registers,
    collect() {
      this.reset();
      this.inc(store.flushStats().bytesCompacted);
    },
  });
  new Gauge({
    name: 'motive_store_flush_last_seconds',
    help: 'Duration of the last flush cycle.',
    registers,
    collect() {
      this.set(store.flushStats().lastCycleMs / 1000);
    },
  });
  new Gauge({
    name: 'motive_runs',
    help: 'Runs the daemon knows.',
    registers,
    collect() {
      this.set(store.runs().length);
    },
  });
}
