/**
 * The disk's own flush floor, with no daemon: how long `fdatasync` takes on the file system the
 * benchmarks' stores live on (the temp dir), back to back and at the feedback benchmark's batch
 * rate. Two shapes: a 4 KiB overwrite and its sync (the least a durable write costs), and a log
 * commit as LMDB makes it (a 320 KiB entry, 256 sketches × (2k + 4m) bytes at k = 512, m = 64,
 * synced, then a 4 KiB meta page synced). No durable Ack can be faster than the second.
 *
 *   npx tsx bench/disk-floor.ts [--count 400] [--rate 10000] [--quick]   (--quick: 100 of each)
 */
import { closeSync, fdatasyncSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { tempDir } from '../test/helpers/daemon.js';
import { fmt, quantile, report } from './lib.js';

const { values } = parseArgs({
  options: { count: { type: 'string', default: '400' }, rate: { type: 'string', default: '10000' }, quick: { type: 'boolean' } },
});
const COUNT = values.quick === true ? 100 : Number(values.count);
/** Sketches/s the paced runs stand for: one commit per batch of 256. */
const PERIOD_MS = (1000 * 256) / Number(values.rate);
const ENTRY_BYTES = 256 * (2 * 512 + 4 * 64);

/** Sync latencies (ms, sorted) of `count` commits of `entryBytes` (0: the meta page alone). */
async function probe(entryBytes: number, paced: boolean): Promise<number[]> {
  const dir = tempDir('motive-bench-floor-');
  const fd = openSync(join(dir.path, 'log'), 'w');
  const entry = Buffer.alloc(Math.max(entryBytes, 1), 1);
  const meta = Buffer.alloc(4096, 2);
  const times: number[] = [];
  try {
    for (let i = 0; i < COUNT; i++) {
      const t0 = performance.now();
      if (entryBytes > 0) {
        // A ring of 64 entries after the meta page: the file's blocks are allocated after one lap.
        writeSync(fd, entry, 0, entry.length, 4096 + (i % 64) * entry.length);
        fdatasyncSync(fd);
      }
      writeSync(fd, meta, 0, meta.length, 0);
      fdatasyncSync(fd);
      const took = performance.now() - t0;
      times.push(took);
      if (paced && took < PERIOD_MS) await new Promise((r) => setTimeout(r, PERIOD_MS - took));
    }
  } finally {
    closeSync(fd);
    dir.remove();
  }
  return times.sort((a, b) => a - b);
}

const rows: Array<Array<string | number>> = [];
for (const [shape, bytes] of [
  ['4 KiB + fdatasync', 0],
  ['log commit: 320 KiB + fdatasync, 4 KiB + fdatasync', ENTRY_BYTES],
] as const)
  for (const paced of [false, true]) {
    const t = await probe(bytes, paced);
    rows.push([
      shape,
      paced ? `${fmt(PERIOD_MS, 1)} ms apart` : 'back to back',
      COUNT,
      fmt(quantile(t, 0.5), 2),
      fmt(quantile(t, 0.99), 2),
      fmt(t.at(-1) ?? NaN, 2),
    ]);
  }
report(
  'disk-floor',
  "The disk's flush floor: fdatasync latency with no daemon (ms)",
  ['shape', 'pace', 'count', 'p50 ms', 'p99 ms', 'max ms'],
  rows,
  {},
);
