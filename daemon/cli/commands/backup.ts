import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError, baseUrl, getJson, type Command } from '../common.js';

export const backupCommand: Command = {
  usage: `backup --out DIR [--url URL]       consistent copy of a running daemon's store (admin token)`,
  run: async (args, io, env) => {
    const { values } = parseArgs({ args, options: { out: { type: 'string' }, url: { type: 'string' } } });
    if (values.out === undefined) throw new UsageError('--out is required');
    const dir = resolve(values.out);
    const url = baseUrl(values.url, env);
    const res = (await getJson(
      `${url}/v1/admin/backup`,
      { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ dir }) },
      env,
    )) as { dir: string; bytes: number; elapsedMs: number };
    io.out(`backup written to ${res.dir} (${(res.bytes / 1024 / 1024).toFixed(1)} MiB in ${res.elapsedMs.toFixed(0)} ms)\n`);
    io.out(`restore with: motive restore --from ${res.dir} --data-dir <empty dir>, then start the daemon on it\n`);
    return 0;
  },
};
