/**
 * `motive report --run R --out report.html [--labels labels.csv]`: one self-contained HTML file
 * of a run (report-html.ts) that can be attached to a ticket. The data comes from the daemon: the
 * run's summary and configuration, every sample's score and weight (the Arrow export, one
 * streamed read), the top harmful and helpful clips with their previews, the explain summary, and
 * with `--labels` the evaluation `motive eval` prints.
 */
import { writeFile, rename } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { RecordBatchReader, type RecordBatch } from 'apache-arrow';
import { MotiveError } from '../../shared/index.js';
import { InputError, UsageError, fromDaemon, authHeaders, baseUrl, getJson, type Command, type Io } from '../common.js';
import { renderReport, type EmbeddedImage, type ReportClip, type ReportData, type ReportExplain } from '../report-html.js';
import { evaluateRun } from './eval.js';
import { fetchArrowExport } from './export.js';

const PREVIEW_KINDS = ['strip', 'anim', 'flow'] as const;

/** Progress on stderr: one line per step; on a terminal the preview count is redrawn in place. */
class Steps {
  private step = 0;
  constructor(
    private readonly io: Io,
    private readonly total: number,
    private readonly tty: boolean,
  ) {}

  next(text: string): void {
    this.step++;
    this.io.err(`report: [${this.step}/${this.total}] ${text}\n`);
  }

  count(what: string, done: number, of: number): void {
    if (this.tty) this.io.err(`\rreport:       ${what} ${done}/${of}` + (done === of ? '\n' : ''));
    else if (done === of) this.io.err(`report:       ${what} ${done}/${of}\n`);
  }
}

/** Every sample's score and weight from the export, read to the end of the HTTP body. */
async function readScoresAndWeights(source: AsyncIterable<Uint8Array>): Promise<{ scores: Float64Array; weights: Float64Array }> {
  const chunks = source[Symbol.asyncIterator]();
  const scores: number[] = [];
  const weights: number[] = [];
  try {
    // The Arrow reader stops at the end-of-stream marker; the body is drained afterwards (as eval does).
    const reader = await RecordBatchReader.from({ [Symbol.asyncIterator]: () => ({ next: () => chunks.next() }) });
    await reader.open();
    for await (const batch of reader as AsyncIterable<RecordBatch>) {
      const score = batch.getChild('score');
      const weight = batch.getChild('weight');
      for (let r = 0; r < batch.numRows; r++) {
        const s: unknown = score?.get(r);
        const w: unknown = weight?.get(r);
        scores.push(s === null || s === undefined ? NaN : Number(s));
        weights.push(w === null || w === undefined ? 1 : Number(w));
      }
    }
    while ((await chunks.next()).done !== true);
  } catch (err) {
    await chunks.return?.();
    throw err;
  }
  return { scores: Float64Array.from(scores), weights: Float64Array.from(weights) };
}

/** One preview as a data: URI's parts, or undefined when the daemon has none (404). */
async function fetchPreview(
  url: string,
  run: string,
  id: string,
  kind: string,
  env: NodeJS.ProcessEnv,
): Promise<EmbeddedImage | undefined> {
  const res = await fetch(`${url}/v1/runs/${encodeURIComponent(run)}/samples/${encodeURIComponent(id)}/preview?kind=${kind}`, {
    headers: authHeaders(env),
  });
  if (res.status === 404) return undefined;
  if (!res.ok) throw new Error(`preview ${kind} of ${id}: HTTP ${res.status}`);
  return {
    type: res.headers.get('content-type') ?? 'application/octet-stream',
    base64: Buffer.from(await res.arrayBuffer()).toString('base64'),
  };
}

type SampleRow = Omit<ReportClip, 'previews'>;

/** Every preview kind of each profiled clip, by clip id, counting them on `steps`. */
async function fetchPreviews(
  url: string,
  run: string,
  profiled: readonly SampleRow[],
  steps: Steps,
  env: NodeJS.ProcessEnv,
): Promise<Map<string, ReportClip['previews']>> {
  const previews = new Map<string, ReportClip['previews']>();
  let done = 0;
  for (const c of profiled) {
    if (!previews.has(c.id)) {
      const got: Record<string, EmbeddedImage> = {};
      for (const kind of PREVIEW_KINDS) {
        const p = await fromDaemon(() => fetchPreview(url, run, c.id, kind, env));
        if (p !== undefined) got[kind] = p;
      }
      previews.set(c.id, got);
    }
    steps.count('previews', ++done, profiled.length);
  }
  return previews;
}

/** Writes the report beside `out` and renames it, so a reader never sees half a report. */
async function writeReport(out: string, html: string): Promise<void> {
  const partial = `${out}.partial`;
  try {
    await writeFile(partial, html);
    await rename(partial, out);
  } catch (err) {
    const e = new MotiveError('MOTIVE_REPORT_WRITE', `${out}: ${(err as Error).message}`);
    throw new InputError(`${e.code}: ${e.message}`);
  }
}

export const reportCommand: Command = {
  usage: `report --run R --out FILE.html [--labels FILE.csv] [--reference clean] [--top N] [--url URL]
                                     one self-contained HTML report of a run: summary, top clips with previews, distributions, evaluation, configuration`,
  run: async (args, io, env) => {
    const { values } = parseArgs({
      args,
      options: {
        run: { type: 'string' },
        out: { type: 'string' },
        labels: { type: 'string' },
        reference: { type: 'string', default: 'clean' },
        top: { type: 'string', default: '12' },
        url: { type: 'string' },
      },
    });
    if (values.run === undefined) throw new UsageError('--run is required');
    if (values.out === undefined) throw new UsageError('--out is required');
    const top = Number(values.top);
    if (!Number.isInteger(top) || top < 1 || top > 100) throw new UsageError('--top must be an integer from 1 to 100');
    const run = values.run;
    const out = values.out;
    const url = baseUrl(values.url, env);
    const steps = new Steps(io, values.labels === undefined ? 5 : 6, env['MOTIVE_PROGRESS'] !== 'lines' && process.stderr.isTTY);
    const runPath = `${url}/v1/runs/${encodeURIComponent(run)}`;

    steps.next('run summary');
    const summary = (await fromDaemon(() => getJson(runPath, undefined, env))) as ReportData['run'];
    const health = (await fromDaemon(() => getJson(`${url}/healthz`, undefined, env))) as { daemon?: string };

    steps.next(`scores and weights of ${summary.samples} sample(s)`);
    const { scores, weights } = await fromDaemon(async () => readScoresAndWeights(await fetchArrowExport(url, run, env)));

    steps.next(`top ${top} harmful and helpful clips`);
    const list = async (order: string): Promise<SampleRow[]> =>
      ((await fromDaemon(() => getJson(`${runPath}/samples?order=${order}&limit=${top}`, undefined, env))) as { samples: SampleRow[] })
        .samples;
    const harmful = await list('harmful');
    const helpful = await list('helpful');

    const profiled = [...harmful, ...helpful].filter((c) => c.motion !== null);
    steps.next(`previews of ${profiled.length} profiled clip(s)`);
    const previews = await fetchPreviews(url, run, profiled, steps, env);
    const withPreviews = (rows: SampleRow[]): ReportClip[] => rows.map((c) => ({ ...c, previews: previews.get(c.id) ?? {} }));
    const explain = (await fromDaemon(() => getJson(`${runPath}/explain`, undefined, env))) as ReportExplain;

    let evaluation: ReportData['evaluation'] = null;
    if (values.labels !== undefined) {
      steps.next(`evaluation against ${values.labels}`);
      const report = await evaluateRun(
        { url, run, labelsFile: values.labels, reference: values.reference, topSpec: '10%', seed: 1, ignoreMissing: true },
        io,
        env,
      );
      evaluation = { report, labelsFile: values.labels };
    }

    steps.next(`writing ${out}`);
    const html = renderReport({
      run: summary,
      daemon: health.daemon ?? 'motived',
      generatedAt: new Date().toISOString(),
      scores,
      weights,
      harmful: withPreviews(harmful),
      helpful: withPreviews(helpful),
      explain,
      evaluation,
    });
    await writeReport(out, html);
    io.out(
      `wrote ${out} (${Math.round(html.length / 1024)} KiB): run ${run}, ${summary.samples} sample(s), ${profiled.length} clip preview(s)\n`,
    );
    return 0;
  },
};
