import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { RecordBatchReader, type RecordBatch } from 'apache-arrow';
import { percentileVotes } from '../../shared/index.js';
import { UsageError, baseUrl, type Command } from '../common.js';
import { fetchArrowExport } from './export.js';

/** One sample as selection sees it. */
export interface SelectionCandidate {
  readonly id: string;
  readonly seen: number;
  readonly score: number;
  readonly weight: number;
  /** S_j, in the run's query id order. */
  readonly sums: Float64Array;
  readonly path: string | null;
}

export interface SelectedClip {
  readonly rank: number;
  readonly id: string;
  readonly path: string | null;
  readonly votes: number;
  readonly score: number;
  readonly weight: number;
  readonly seen: number;
}

export type SelectionMethod = 'votes' | 'score';

/**
 * The paper's offline selection. `votes`: per query j the cut τ_j is the `votePercentile`-th
 * percentile (linear interpolation) of S_j over the samples, a sample's votes count the queries
 * with S_j > τ_j, and samples are ranked by votes, ties by score, then id. `score`: by score, then
 * id. The first `count` are selected.
 */
export function selectClips(
  candidates: readonly SelectionCandidate[],
  method: SelectionMethod,
  votePercentile: number,
  count: number,
): SelectedClip[] {
  const pool = candidates.filter((c) => c.seen > 0);
  const m = pool.reduce((acc, c) => Math.max(acc, c.sums.length), 0);
  const cut = percentileVotes(
    pool.map((c) => c.sums),
    m,
    votePercentile,
  );
  const rows = pool.map((c, i) => ({ c, votes: cut.votes[i] as number }));
  const byId = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  if (method === 'votes') rows.sort((a, b) => b.votes - a.votes || b.c.score - a.c.score || byId(a.c.id, b.c.id));
  else rows.sort((a, b) => b.c.score - a.c.score || byId(a.c.id, b.c.id));
  return rows.slice(0, count).map(({ c, votes }, i) => ({
    rank: i + 1,
    id: c.id,
    path: c.path,
    votes,
    score: c.score,
    weight: c.weight,
    seen: c.seen,
  }));
}

/** `--top 10%` → ceil(10% of n); `--top 250` → 250. */
export function topCount(spec: string, n: number): number {
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(spec);
  if (pct !== null) {
    const p = Number(pct[1]);
    if (p <= 0 || p > 100) throw new UsageError('--top percentage must be in (0, 100]');
    return Math.ceil((n * p) / 100);
  }
  if (!/^\d+$/.test(spec) || Number(spec) < 1) throw new UsageError('--top must be a percentage (10%) or a count (250)');
  return Math.min(n, Number(spec));
}

/** Reads the Arrow export into selection candidates; returns them and the daemon's vote percentile. */
export async function readCandidates(
  source: AsyncIterable<Uint8Array>,
): Promise<{ candidates: SelectionCandidate[]; votePercentile: number }> {
  const reader = await RecordBatchReader.from(source);
  await reader.open();
  const votePercentile = Number(reader.schema.metadata.get('motive.vote_percentile') ?? '90');
  const candidates: SelectionCandidate[] = [];
  for await (const batch of reader as AsyncIterable<RecordBatch>) {
    const id = batch.getChild('id');
    const seen = batch.getChild('seen');
    const score = batch.getChild('score');
    const weight = batch.getChild('weight');
    const sums = batch.getChild('query_sums');
    const path = batch.getChild('clip_path');
    for (let r = 0; r < batch.numRows; r++) {
      const list = sums?.get(r) as { toArray(): Float64Array } | null | undefined;
      candidates.push({
        id: String(id?.get(r)),
        seen: Number(seen?.get(r)),
        score: Number(score?.get(r)),
        weight: Number(weight?.get(r)),
        sums: list === null || list === undefined ? new Float64Array(0) : Float64Array.from(list.toArray()),
        path: (path?.get(r) as string | null | undefined) ?? null,
      });
    }
  }
  return { candidates, votePercentile };
}

function csvCell(v: string | number | null): string {
  if (v === null) return '';
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The manifest as CSV (header `rank,id,path,votes,score,weight,seen`) or JSONL (one object per line). */
export function manifestText(clips: readonly SelectedClip[], format: 'csv' | 'jsonl'): string {
  if (format === 'jsonl') return clips.map((c) => JSON.stringify(c)).join('\n') + (clips.length > 0 ? '\n' : '');
  const header = 'rank,id,path,votes,score,weight,seen\n';
  return header + clips.map((c) => [c.rank, c.id, c.path, c.votes, c.score, c.weight, c.seen].map(csvCell).join(',') + '\n').join('');
}

export const selectCommand: Command = {
  usage: `select --run R --top 10%|N [--method votes|score] [--percentile P] --out FILE.jsonl|FILE.csv [--url URL]
                                     the best clips for fine-tuning (majority vote over per-query percentile cuts), as a manifest`,
  run: async (args, io, env) => {
    const { values } = parseArgs({
      args,
      options: {
        run: { type: 'string' },
        top: { type: 'string', default: '10%' },
        method: { type: 'string', default: 'votes' },
        percentile: { type: 'string' },
        out: { type: 'string' },
        url: { type: 'string' },
      },
    });
    if (values.run === undefined) throw new UsageError('--run is required');
    if (values.out === undefined) throw new UsageError('--out is required');
    const method = values.method;
    if (method !== 'votes' && method !== 'score') throw new UsageError('--method must be votes or score');
    const { candidates, votePercentile } = await readCandidates(await fetchArrowExport(baseUrl(values.url, env), values.run, env));
    const p = values.percentile === undefined ? votePercentile : Number(values.percentile);
    if (!Number.isFinite(p) || p < 0 || p > 100) throw new UsageError('--percentile must be in [0, 100]');
    const eligible = candidates.filter((c) => c.seen > 0).length;
    const selected = selectClips(candidates, method, p, topCount(values.top, eligible));
    const format = values.out.toLowerCase().endsWith('.csv') ? 'csv' : 'jsonl';
    await writeFile(values.out, manifestText(selected, format));
    const withPath = selected.filter((c) => c.path !== null).length;
    io.out(
      `selected ${selected.length} of ${eligible} clip(s) of run ${values.run} by ${method === 'votes' ? `votes (cut at the ${p}th percentile per query)` : 'score'}; ` +
        `${withPath} with a profiled file path; wrote ${values.out} (${format})\n`,
    );
    return 0;
  },
};
