import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Store } from '../../store/index.js';
import { UsageError, type Command } from '../common.js';

export const restoreCommand: Command = {
  usage: `restore --from DIR --data-dir DIR   put a backup in place (daemon stopped); checks its format`,
  run: async (args, io) => {
    const { values } = parseArgs({ args, options: { from: { type: 'string' }, 'data-dir': { type: 'string' } } });
    if (values.from === undefined || values['data-dir'] === undefined) throw new UsageError('--from and --data-dir are required');
    const from = resolve(values.from);
    const to = resolve(values['data-dir']);
    // A backup is the main environment (data.mdb) and the samples environment (samples/data.mdb).
    for (const file of ['data.mdb', join('samples', 'data.mdb')])
      if (!existsSync(join(from, file))) throw new Error(`${from} holds no backup (no ${file})`);
    if (existsSync(to) && readdirSync(to).length > 0) throw new Error(`${to} is not empty; restore into an empty or new directory`);
    mkdirSync(join(to, 'samples'), { recursive: true });
    copyFileSync(join(from, 'data.mdb'), join(to, 'data.mdb'));
    copyFileSync(join(from, 'samples', 'data.mdb'), join(to, 'samples', 'data.mdb'));
    // Opening checks the store format version and loads every run.
    const store = await Store.open({ dataDir: to, mapSizeBytes: 64 * 1024 ** 3 });
    const runs = store.runs().map((r) => `${r.info.id} (${r.samples.size} samples)`);
    await store.close();
    io.out(`restored ${runs.length} run(s) into ${to}: ${runs.join(', ') || 'none'}\nstart it with: MOTIVE_DATA_DIR=${to} npm start\n`);
    return 0;
  },
};
