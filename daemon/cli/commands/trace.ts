import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { SUMMARY_HEADERS, readAckTrace, summaryRows } from '../../shared/trace-summary.js';
import { UsageError, table, type Command } from '../common.js';

/**
 * `motive trace FILE`: where a daemon's Acks spent their time, from the Ack-path trace it wrote
 * with `MOTIVE_TRACE_FILE` set (docs/observability.md): for the median Acks and the slowest 1 %,
 * the mean ms of each step from reading the batch off its stream to sending its Ack, and the ms of
 * that span the main thread spent on the flusher, recomputes and GC, or a flush chunk was in
 * flight. `--json` prints the summary as JSON.
 */
export const traceCommand: Command = {
  usage: 'trace FILE [--warmup-ms MS] [--json]   where the Acks went, from a MOTIVE_TRACE_FILE trace',
  run: (args, io) => {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { 'warmup-ms': { type: 'string' }, json: { type: 'boolean' } },
    });
    const file = positionals[0];
    if (file === undefined || positionals.length > 1) throw new UsageError('expected one FILE');
    const warmupMs = values['warmup-ms'] === undefined ? 0 : Number(values['warmup-ms']);
    if (!Number.isFinite(warmupMs) || warmupMs < 0) throw new UsageError('--warmup-ms must be a number >= 0');
    if (!existsSync(file)) throw new Error(`${file}: no such file`);
    const summary = readAckTrace(file, warmupMs);
    if (summary.acks === 0) throw new Error(`${file}: no acknowledged batch in the trace (was MOTIVE_TRACE_FILE set on the daemon?)`);
    if (values.json === true) {
      io.out(`${JSON.stringify(summary, null, 2)}\n`);
      return Promise.resolve(0);
    }
    io.out(
      `${summary.acks} Acks: p50 ${summary.p50Ms.toFixed(1)} ms, p99 ${summary.p99Ms.toFixed(1)} ms (read off the stream → Ack sent, in the daemon)\n` +
        `mean ms per Ack by step, and ms of its span spent on (main thread) or overlapping (flush writes):\n\n` +
        table(SUMMARY_HEADERS, summaryRows(summary)),
    );
    return Promise.resolve(0);
  },
};
