import { parseArgs } from 'node:util';
import { UsageError, baseUrl, getJson, type Command } from '../common.js';

export const runsCommand: Command = {
  usage: `runs delete R --yes [--url URL]    delete a run and all it stored (admin token)`,
  run: async (args, io, env) => {
    const [sub, ...rest] = args;
    if (sub !== 'delete') throw new UsageError(`unknown runs sub-command "${sub ?? ''}"`);
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: { yes: { type: 'boolean' }, url: { type: 'string' } },
    });
    const runId = positionals[0];
    if (runId === undefined) throw new UsageError('name the run to delete');
    if (values.yes !== true) throw new UsageError(`deleting run ${runId} cannot be undone; add --yes`);
    const url = baseUrl(values.url, env);
    await getJson(`${url}/v1/runs/${encodeURIComponent(runId)}`, { method: 'DELETE' }, env);
    io.out(`deleted run ${runId}\n`);
    return 0;
  },
};
