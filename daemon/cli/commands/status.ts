import { parseArgs } from 'node:util';
import { baseUrl, getJson, table, type Command } from '../common.js';

interface RunSummary {
  id: string;
  samples: number;
  batches: number;
  sketches: number;
  lastStep: number;
  queries: number;
  weightsVersion: number;
  attachedTrainers: number;
}

export const statusCommand: Command = {
  usage: 'status [--url URL]                 daemon health and its runs',
  run: async (args, io, env) => {
    const { values } = parseArgs({ args, options: { url: { type: 'string' } } });
    const url = baseUrl(values.url, env);
    const health = (await getJson(`${url}/healthz`, undefined, env)) as { status: string; daemon: string; queueDepth: number };
    const { runs } = (await getJson(`${url}/v1/runs`, undefined, env)) as { runs: RunSummary[] };
    io.out(`daemon ${health.daemon} at ${url}: ${health.status}, ${runs.length} run(s), queue depth ${health.queueDepth}\n`);
    if (runs.length > 0) {
      io.out(
        table(
          ['run', 'trainers', 'samples', 'batches', 'sketches', 'last step', 'queries', 'weights v'],
          runs.map((r) => [r.id, r.attachedTrainers, r.samples, r.batches, r.sketches, r.lastStep, r.queries, r.weightsVersion]),
        ),
      );
    }
    return 0;
  },
};
