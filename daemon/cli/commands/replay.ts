import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { captureToArrow, isCapture, parseCapture } from '../../replay/index.js';
import { UsageError, type Command } from '../common.js';
import { readRecordedRun, replayRecordedRun } from '../recorded-run.js';

/**
 * `motive replay FILE`: streams a recorded run (Arrow IPC, `schemas/recorded-run.md`) into a running
 * daemon through the TypeScript client, paced by its recorded `t_ms` (`--speed`, 0 = as fast as
 * acknowledged). `--convert OUT` turns a Python capture file (`MOTCAP1`) into that Arrow file
 * instead of streaming.
 */
export const replayCommand: Command = {
  usage: 'replay FILE [--grpc HOST:PORT] [--run ID] [--speed X] [--convert OUT.arrow]   stream a recorded run into a daemon',
  run: async (args, io, env) => {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        grpc: { type: 'string' },
        run: { type: 'string' },
        speed: { type: 'string' },
        convert: { type: 'string' },
      },
    });
    const file = positionals[0];
    if (file === undefined || positionals.length > 1) throw new UsageError('expected one FILE');
    if (values.convert !== undefined) {
      const bytes = readFileSync(file);
      if (!isCapture(bytes)) throw new UsageError(`${file} is not a capture file (MOTCAP1)`);
      const messages = parseCapture(bytes);
      const arrow = captureToArrow(messages);
      writeFileSync(values.convert, arrow);
      io.out(`wrote ${values.convert}: ${messages.length} messages, ${arrow.byteLength} bytes\n`);
      return 0;
    }
    const speed = values.speed === undefined ? 0 : Number(values.speed);
    if (!Number.isFinite(speed) || speed < 0) throw new UsageError('--speed must be a number >= 0');
    const address = values.grpc ?? env['MOTIVE_GRPC'] ?? '127.0.0.1:50051';
    const messages = isCapture(readFileSync(file)) ? null : readRecordedRun(file);
    if (messages === null) throw new UsageError(`${file} is a capture file: convert it first with --convert OUT.arrow`);
    const runId =
      values.run ??
      `replay-${basename(file)
        .replace(/\.[^.]*$/, '')
        .replace(/[^A-Za-z0-9._:-]/g, '-')}`;
    io.out(`replaying ${messages.length} messages of ${file} into ${address} as run ${runId} (speed ${speed === 0 ? 'max' : speed})\n`);
    const done = await replayRecordedRun(messages, { address, runId, speed });
    io.out(`done: ${done.batches} batches, ${done.sketches} sketches, ${done.querySets} query sets, last step ${done.step}\n`);
    return 0;
  },
};
