/**
 * The Ack-path trace (docs/performance.md, "Where the slow Acks go"): with `MOTIVE_TRACE_FILE`
 * set, the daemon writes one line per event to that file (emptied first), each a kind and its
 * times in milliseconds on this process's `performance.now()` clock:
 *
 *   ack RANK SEQ RECEIVED SUBMITTED ACKED     a batch read off its stream, decoded and handed to
 *                                             the engine, its Ack sent
 *   batch RANK SEQ SUBMITTED TAKEN PREPARED WRITING DURABLE
 *                                             its group taken up, prepared (scored), its commit
 *                                             begun, durable (the Ack is sent then; the group's
 *                                             apply follows it)
 *   commit START END ENTRIES                  one store commit (a group's or a weights update's):
 *                                             begun, durable
 *   flush START END RECORDS                   one slice of the flusher on the main thread
 *   flush-write START END RECORDS             one flush chunk: its first record built, its
 *                                             samples transaction synced
 *   recompute START END                       one stretch of a weights recompute on the main thread
 *   gc START END                              one garbage collection
 *
 * The `ack` and `recompute` lines are written by subscriptions to ingest's and the weighting
 * service's channels (daemon/tracing.ts); the others where they happen. Off (the default), every
 * call site is one boolean test. `motive trace FILE` reads it
 * (`trace-summary.ts`): where the median and the slowest Acks spent their time and what ran on the
 * main thread meanwhile; `bench/feedback.ts --trace` runs its daemon with it.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';

class Trace {
  private fd = -1;
  private observer: PerformanceObserver | undefined;

  /** True while tracing: call sites test it before building an event. */
  get on(): boolean {
    return this.fd >= 0;
  }

  /** Starts writing to `file` (truncated). */
  open(file: string): void {
    this.close();
    this.fd = openSync(file, 'w');
    this.observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) this.event('gc', e.startTime, e.startTime + e.duration);
    });
    this.observer.observe({ entryTypes: ['gc'] });
  }

  /** One event: its kind, then its fields (times in ms, to 0.01 ms). */
  event(kind: string, ...fields: number[]): void {
    if (this.fd < 0) return;
    let line = kind;
    for (const f of fields) line += ` ${Number.isInteger(f) ? f : f.toFixed(2)}`;
    writeSync(this.fd, `${line}\n`);
  }

  close(): void {
    this.observer?.disconnect();
    this.observer = undefined;
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

/** The process's trace; `main` opens it when `MOTIVE_TRACE_FILE` is set. */
export const trace = new Trace();
