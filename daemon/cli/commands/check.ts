import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { checkStore } from '../../store/check.js';
import { UsageError, type Command } from '../common.js';

export const checkCommand: Command = {
  usage: `check [--data-dir DIR] [--repair]   checks a stopped store's files (exit 1 on a problem); --repair cuts off torn tails only`,
  run: async (args, io, env) => {
    const { values } = parseArgs({ args, options: { 'data-dir': { type: 'string' }, repair: { type: 'boolean', default: false } } });
    const dir = values['data-dir'] ?? env['MOTIVE_DATA_DIR'];
    if (dir === undefined) throw new UsageError('--data-dir (or $MOTIVE_DATA_DIR) is required');
    const dataDir = resolve(dir);
    const result = await checkStore(dataDir, values.repair);
    for (const f of result.fatal) io.out(`problem: ${f}\n`);
    for (const p of result.problems)
      io.out(`${p.repaired ? 'repaired' : 'problem'}: ${p.kind}: ${p.file} at offset ${p.offset}: ${p.detail}\n`);
    for (const n of result.notes) io.out(`note: ${n}\n`);
    const left = result.fatal.length + result.problems.filter((p) => !p.repaired).length;
    io.out(`${dataDir}: ${result.runs} run(s), ${result.frames} frame(s) read, ${left === 0 ? 'no problem left' : `${left} problem(s)`}\n`);
    return left === 0 ? 0 : 1;
  },
};
