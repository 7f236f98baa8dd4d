import { parseArgs } from 'node:util';
import { UsageError, baseUrl, getJson, table, type Command } from '../common.js';

interface SampleRow {
  id: string;
  score: number;
  seen: number;
  votes: number;
  weight: number;
  lastStep: number;
  fused: number | null;
}

export const topCommand: Command = {
  usage: `top --run R [--harmful|--helpful|--votes] [--limit N] [--url URL]
                                     the run's clips, most harmful first by default`,
  run: async (args, io, env) => {
    const { values } = parseArgs({
      args,
      options: {
        run: { type: 'string' },
        harmful: { type: 'boolean' },
        helpful: { type: 'boolean' },
        votes: { type: 'boolean' },
        limit: { type: 'string', default: '20' },
        url: { type: 'string' },
      },
    });
    if (values.run === undefined) throw new UsageError('--run is required');
    const order = values.helpful ? 'helpful' : values.votes ? 'votes' : 'harmful';
    const url = baseUrl(values.url, env);
    const { samples } = (await getJson(
      `${url}/v1/runs/${encodeURIComponent(values.run)}/samples?order=${order}&limit=${encodeURIComponent(values.limit)}`,
      undefined,
      env,
    )) as { samples: SampleRow[] };
    const label = order === 'harmful' ? 'most harmful' : order === 'helpful' ? 'most helpful' : 'most votes';
    io.out(`run ${values.run}: ${samples.length} clip(s), ${label} first\n`);
    io.out(
      table(
        ['#', 'sample', 'score', 'fused', 'votes', 'weight', 'seen', 'last step'],
        samples.map((s, i) => [i + 1, s.id, s.score, s.fused ?? '-', s.votes, s.weight, s.seen, s.lastStep]),
      ),
    );
    return 0;
  },
};
