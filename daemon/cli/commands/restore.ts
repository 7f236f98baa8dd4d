import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
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
    // A backup is the main environment (data.mdb) and the runs' record segments (records/), or
    // from a format 3 or 4 store, a samples environment (samples/data.mdb) instead, which
    // opening moves into segments.
    if (!existsSync(join(from, 'data.mdb'))) throw new Error(`${from} holds no backup (no data.mdb)`);
    if (existsSync(to) && readdirSync(to).length > 0) throw new Error(`${to} is not empty; restore into an empty or new directory`);
    mkdirSync(to, { recursive: true });
    copyFileSync(join(from, 'data.mdb'), join(to, 'data.mdb'));
    if (existsSync(join(from, 'records'))) cpSync(join(from, 'records'), join(to, 'records'), { recursive: true });
    if (existsSync(join(from, 'samples', 'data.mdb'))) {
      mkdirSync(join(to, 'samples'));
      copyFileSync(join(from, 'samples', 'data.mdb'), join(to, 'samples', 'data.mdb'));
    }
    // Opening makes the daemon's checks (format, data.mdb, every segment frame against the
    // manifest) and loads every run; what the daemon would refuse is refused here, and the copy
    // removed again.
    let store: Store;
    try {
      store = await Store.open({
        dataDir: to,
        mapSizeBytes: 64 * 1024 ** 3,
        onRepair: (message) => io.err(`${message}\n`),
      });
    } catch (err) {
      for (const name of readdirSync(to)) rmSync(join(to, name), { recursive: true, force: true });
      throw err;
    }
    const runs = store.runs().map((r) => `${r.info.id} (${r.samples.size} samples)`);
    await store.close();
    io.out(`restored ${runs.length} run(s) into ${to}: ${runs.join(', ') || 'none'}\nstart it with: MOTIVE_DATA_DIR=${to} npm start\n`);
    return 0;
  },
};
