import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { RecordBatchReader, type RecordBatch } from 'apache-arrow';
import { MotiveError, type ErrorCode } from '../../shared/index.js';
import { InputError, UsageError, fromDaemon, baseUrl, getJson, table, type Command, type Io } from '../common.js';
import { evaluateLabels, type EvalClip, type EvalFigures, type GroupFigures } from '../eval-metrics.js';
import { LabelsError, parseLabels } from '../labels-csv.js';
import { fetchArrowExport } from './export.js';
import { topCount } from './select.js';

/** Per-sample values a ranking can use: the export's columns of these names. */
export const SIGNALS = ['fused', 'score', 'check'] as const;
export type Signal = (typeof SIGNALS)[number];

/** `check` grows with harm; `fused` and `score` shrink. */
const HIGHER_IS_HARMFUL: ReadonlySet<Signal> = new Set(['check']);

export const REPLICATES = 2000;
export const LEVEL = 0.95;
/** How many unknown ids an error or warning names. */
const NAMED = 5;

interface RunClip {
  readonly seen: number;
  readonly weight: number;
  readonly values: Partial<Record<Signal, number | null>>;
}

function fail(code: ErrorCode, detail: string): never {
  throw new InputError(`${code}: ${new MotiveError(code, detail).message}`);
}

/**
 * Reads the run's Arrow export (every sample, in one streamed request) and keeps the rows of the
 * labelled ids. Returns them and which signals the export carries.
 */
async function readRun(
  source: AsyncIterable<Uint8Array>,
  wanted: ReadonlyMap<string, string>,
): Promise<{ clips: Map<string, RunClip>; signals: Signal[]; samples: number }> {
  // The Arrow reader stops at the end-of-stream marker without asking the body for its end, which
  // leaves the HTTP response unfinished and its connection busy (a daemon stopping in the same
  // process then waits for it). It gets the chunks through a view without `return`, and the body
  // is read to its end afterwards.
  const chunks = source[Symbol.asyncIterator]();
  try {
    const result = await readRows({ [Symbol.asyncIterator]: () => ({ next: () => chunks.next() }) }, wanted);
    while ((await chunks.next()).done !== true);
    return result;
  } catch (err) {
    await chunks.return?.();
    throw err;
  }
}

async function readRows(
  source: AsyncIterable<Uint8Array>,
  wanted: ReadonlyMap<string, string>,
): Promise<{ clips: Map<string, RunClip>; signals: Signal[]; samples: number }> {
  const reader = await RecordBatchReader.from(source);
  await reader.open();
  const names = new Set(reader.schema.fields.map((f) => f.name));
  const signals = SIGNALS.filter((s) => names.has(s));
  const clips = new Map<string, RunClip>();
  let samples = 0;
  for await (const batch of reader as AsyncIterable<RecordBatch>) {
    const id = batch.getChild('id');
    const seen = batch.getChild('seen');
    const weight = batch.getChild('weight');
    const columns = signals.map((s) => [s, batch.getChild(s)] as const);
    samples += batch.numRows;
    for (let r = 0; r < batch.numRows; r++) {
      const key = String(id?.get(r));
      if (!wanted.has(key)) continue;
      const values: Partial<Record<Signal, number | null>> = {};
      for (const [s, col] of columns) {
        const v: unknown = col?.get(r);
        values[s] = v === null || v === undefined ? null : Number(v);
      }
      const w: unknown = weight?.get(r);
      clips.set(key, { seen: Number(seen?.get(r) ?? 0), weight: w === null || w === undefined ? 1 : Number(w), values });
    }
  }
  return { clips, signals, samples };
}

async function readLabels(file: string): Promise<Map<string, string>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    fail('MOTIVE_EVAL_LABELS', `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    return new Map(parseLabels(text, file).labels);
  } catch (err) {
    if (err instanceof LabelsError) fail('MOTIVE_EVAL_LABELS', err.message);
    throw err;
  }
}

/** Both sides present: the reference label and at least one other. */
function checkSides(labels: ReadonlyMap<string, string>, reference: string, where: string): void {
  const found = [...new Set(labels.values())];
  if (!found.includes(reference)) {
    fail(
      'MOTIVE_EVAL_LABELS',
      `${where}: no clip is labelled ${JSON.stringify(reference)} (the reference; labels found: ${found.join(', ') || 'none'}); name another with --reference`,
    );
  }
  if (found.length < 2)
    fail('MOTIVE_EVAL_LABELS', `${where}: every clip is labelled ${JSON.stringify(reference)}; label at least one clip otherwise`);
}

export interface EvalReport extends EvalFigures {
  readonly run: string;
  /** Samples in the run (labelled or not). */
  readonly samples: number;
  readonly signal: Signal;
  readonly harmful: 'lower' | 'higher';
  readonly signals: Signal[];
  readonly weightsVersion: number;
  readonly topSpec: string;
  readonly bootstrap: { readonly replicates: number; readonly seed: number; readonly level: number };
  readonly missing: { readonly count: number; readonly ids: string[] };
}

const fixed = (v: number | null): string => (v === null ? '-' : v.toFixed(4));

function textReport(r: EvalReport, labelsFile: string): string {
  const head =
    `run ${r.run}: ${r.ranked} scored labelled clip(s) from ${labelsFile}; signal ${r.signal} (${r.harmful} = more harmful); ` +
    `reference ${JSON.stringify(r.reference.label)}; weights version ${r.weightsVersion}\n`;
  const row = (g: GroupFigures, name = g.label): Array<string | number> => [
    name,
    g.n,
    g.unscored,
    fixed(g.auc),
    g.ci === null ? '-' : `${fixed(g.ci[0])}–${fixed(g.ci[1])}`,
    fixed(g.precisionAtTop),
    fixed(g.baseRate),
    fixed(g.meanWeight),
  ];
  const body = table(
    ['label', 'n', 'unscored', 'AUC', '95% CI', `prec@${r.topSpec}`, 'base rate', 'mean weight'],
    [...r.labels.map((g) => row(g)), row(r.pooled), row(r.reference, `${r.reference.label} (reference)`)],
  );
  const foot =
    `AUC: P(${r.signal} of a labelled clip more harmful than a reference clip's) + ½ P(tie); 95% CI: stratified bootstrap, ` +
    `${r.bootstrap.replicates} replicates, seed ${r.bootstrap.seed}\nprec@${r.topSpec}: share of the ${r.top} most harmful of the ` +
    `${r.ranked} scored labelled clips; unscored clips (not seen yet) are left out of both\n`;
  return head + body + foot;
}

export interface EvalRunOptions {
  readonly url: string;
  readonly run: string;
  readonly labelsFile: string;
  readonly reference: string;
  /** `10%` or a count. */
  readonly topSpec: string;
  /** Default: fused where a labelled clip has it, else score. */
  readonly signal?: Signal;
  readonly seed: number;
  /** Leave out labelled ids that are not in the run (with a warning on `io.err`) instead of failing. */
  readonly ignoreMissing: boolean;
}

/**
 * The evaluation of a run against a labels file (what `motive eval` prints; `motive report` shows
 * it too). Input problems throw {@link InputError}s with the `MOTIVE_EVAL_*` code in the message.
 */
export async function evaluateRun(o: EvalRunOptions, io: Io, env: NodeJS.ProcessEnv): Promise<EvalReport> {
  const { url, run, labelsFile, reference, topSpec, seed } = o;
  topCount(topSpec, 1);

  let labels = await readLabels(labelsFile);
  checkSides(labels, reference, labelsFile);

  const summary = (await fromDaemon(() => getJson(`${url}/v1/runs/${encodeURIComponent(run)}`, undefined, env))) as {
    weightsVersion: number;
  };
  const data = await fromDaemon(async () => readRun(await fetchArrowExport(url, run, env), labels));

  const missing = [...labels.keys()].filter((id) => !data.clips.has(id));
  if (missing.length > 0) {
    const named = missing.slice(0, NAMED).join(', ') + (missing.length > NAMED ? ', …' : '');
    const what = `${missing.length} of ${labels.size} id(s) in ${labelsFile} are not in run ${run} (${named})`;
    if (!o.ignoreMissing) fail('MOTIVE_EVAL_UNKNOWN_IDS', `${what}; --ignore-missing evaluates the rest`);
    io.err(`motive eval: warning: ${what}; left out\n`);
    labels = new Map([...labels].filter(([id]) => data.clips.has(id)));
    checkSides(labels, reference, `${labelsFile}, after leaving out the ids not in the run`);
  }

  // A signal counts where a labelled clip has a value for it: the export carries the fused and
  // check columns for every run, empty for a run whose trainers send no motion checks.
  const available = data.signals.filter((s) => [...data.clips.values()].some((c) => typeof c.values[s] === 'number'));
  const signal: Signal = o.signal ?? (available.includes('fused') ? 'fused' : 'score');
  if (!available.includes(signal)) {
    fail('MOTIVE_EVAL_SIGNAL', `run ${run}'s data has no ${signal} value (it has: ${available.join(', ')})`);
  }
  const sign = HIGHER_IS_HARMFUL.has(signal) ? -1 : 1;
  const clips: EvalClip[] = [...labels].map(([id, label]) => {
    const c = data.clips.get(id) as RunClip;
    const v = c.values[signal];
    return { id, label, weight: c.weight, harm: c.seen > 0 && v !== null && v !== undefined && Number.isFinite(v) ? sign * v : null };
  });
  const figures = evaluateLabels(clips, {
    reference,
    topCount: (n) => topCount(topSpec, n),
    replicates: REPLICATES,
    seed,
    level: LEVEL,
  });
  if (figures.reference.n === 0) fail('MOTIVE_EVAL_UNSCORED', `no ${JSON.stringify(reference)} clip has a ${signal} value yet`);
  if (figures.pooled.n === 0) fail('MOTIVE_EVAL_UNSCORED', `no clip outside ${JSON.stringify(reference)} has a ${signal} value yet`);

  return {
    run,
    samples: data.samples,
    signal,
    harmful: sign < 0 ? 'higher' : 'lower',
    signals: available,
    weightsVersion: summary.weightsVersion,
    topSpec,
    bootstrap: { replicates: REPLICATES, seed, level: LEVEL },
    missing: { count: missing.length, ids: missing.slice(0, NAMED) },
    ...figures,
  };
}

export const evalCommand: Command = {
  usage: `eval --run R --labels FILE.csv [--reference clean] [--top 10%|N] [--signal fused|score|check]
          [--seed N] [--ignore-missing] [--json] [--url URL]
                                     how well the signal finds clips you labelled: AUC vs the reference label, bootstrap 95% CI, precision at the top, mean weight`,
  run: async (args, io, env) => {
    const { values } = parseArgs({
      args,
      options: {
        run: { type: 'string' },
        labels: { type: 'string' },
        reference: { type: 'string', default: 'clean' },
        top: { type: 'string', default: '10%' },
        signal: { type: 'string' },
        seed: { type: 'string', default: '1' },
        'ignore-missing': { type: 'boolean' },
        json: { type: 'boolean' },
        url: { type: 'string' },
      },
    });
    if (values.run === undefined) throw new UsageError('--run is required');
    if (values.labels === undefined) throw new UsageError('--labels is required');
    const asked = values.signal;
    if (asked !== undefined && !(SIGNALS as readonly string[]).includes(asked))
      throw new UsageError(`--signal must be one of ${SIGNALS.join(', ')}`);
    if (!/^\d+$/.test(values.seed)) throw new UsageError('--seed must be a non-negative integer');
    const report = await evaluateRun(
      {
        url: baseUrl(values.url, env),
        run: values.run,
        labelsFile: values.labels,
        reference: values.reference,
        topSpec: values.top,
        ...(asked === undefined ? {} : { signal: asked as Signal }),
        seed: Number(values.seed),
        ignoreMissing: values['ignore-missing'] === true,
      },
      io,
      env,
    );
    io.out(values.json === true ? JSON.stringify(report) + '\n' : textReport(report, values.labels));
    return 0;
  },
};
