/**
 * Every benchmark in turn, each in its own process (`npm run bench`): ingest, feedback latency,
 * the disk's own flush floor, attribution scan (with its baselines), scans while a run streams, memory, and the costs against
 * catalogue size (1M and 2M samples). Tables go to
 * stdout, JSON to bench/results/. The first run fills the 100k, 1M and 2M sample stores under
 * bench/.cache/ (a few minutes); later runs reuse them.
 *
 *   npm run bench [-- --quick]
 */
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from './lib.js';

const { values } = parseArgs({ options: { quick: { type: 'boolean' } } });
const extra = values.quick === true ? ['--quick'] : [];
const benches: Array<[string, string[]]> = [
  ['ingest', ['--profile']],
  ['feedback', []],
  ['disk-floor', []],
  ['scan', ['--profile']],
  ['scan-live', []],
  ['memory', []],
  ['scale', []],
];
let failed = 0;
for (const [name, args] of benches) {
  process.stdout.write(`\n=== bench/${name}.ts ${[...args, ...extra].join(' ')}\n`);
  const res = spawnSync(process.execPath, ['--import', 'tsx', `bench/${name}.ts`, ...args, ...extra], { cwd: REPO_ROOT, stdio: 'inherit' });
  if (res.status !== 0) {
    failed++;
    process.stdout.write(`bench/${name}.ts failed (exit ${String(res.status ?? res.signal)})\n`);
  }
}
process.exitCode = failed === 0 ? 0 : 1;
