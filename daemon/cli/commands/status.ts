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

interface SidecarDetail {
  backlog: number;
  leased: number;
  created: number;
  attributed: number;
  dropped: number;
  stalenessMean: number;
  stalenessMax: number;
}

export const statusCommand: Command = {
  usage: 'status [--url URL] [--rate-ms N]   daemon health, its runs, side-car backlog and worker throughput',
  run: async (args, io, env) => {
    const { values } = parseArgs({ args, options: { url: { type: 'string' }, 'rate-ms': { type: 'string' } } });
    const url = baseUrl(values.url, env);
    const rateMs = Math.max(0, Number(values['rate-ms'] ?? 1000) || 0);
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
    await sidecarTable(url, runs, rateMs, io.out, env);
    return 0;
  },
};

/** Runs in side-car mode: backlog, leases, counts, staleness and the workers' clips/s over `rateMs`. */
async function sidecarTable(
  url: string,
  runs: readonly RunSummary[],
  rateMs: number,
  out: (s: string) => void,
  env: NodeJS.ProcessEnv,
): Promise<void> {
  const read = async (): Promise<Map<string, SidecarDetail>> => {
    const m = new Map<string, SidecarDetail>();
    for (const r of runs) {
      const d = (await getJson(`${url}/v1/runs/${encodeURIComponent(r.id)}`, undefined, env)) as { sidecar?: SidecarDetail };
      if (d.sidecar !== undefined) m.set(r.id, d.sidecar);
    }
    return m;
  };
  const before = await read();
  if (before.size === 0) return;
  const t0 = performance.now();
  let after = before;
  if (rateMs > 0) {
    await new Promise((r) => setTimeout(r, rateMs));
    after = await read();
  }
  const seconds = (performance.now() - t0) / 1000;
  out('side-car attribution\n');
  out(
    table(
      ['run', 'backlog', 'leased', 'attributed', 'created', 'dropped', 'clips/s', 'staleness mean', 'staleness max'],
      [...after].map(([id, s]) => [
        id,
        s.backlog,
        s.leased,
        s.attributed,
        s.created,
        s.dropped,
        rateMs > 0 ? ((s.attributed - (before.get(id)?.attributed ?? s.attributed)) / seconds).toFixed(1) : '-',
        s.stalenessMean.toFixed(2),
        s.stalenessMax,
      ]),
    ),
  );
}
