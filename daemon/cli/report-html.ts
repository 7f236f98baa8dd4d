/**
 * The HTML of `motive report`: one self-contained file (inline CSS, plots as inline SVG, previews
 * as `data:` URIs, no script, nothing fetched), so it can be attached to a ticket and opened
 * anywhere. Pure: the command gathers the data (commands/report.ts).
 */
import type { EvalReport } from './commands/eval.js';
import type { GroupFigures } from './eval-metrics.js';

/** A preview as embedded: media type and base64 bytes. */
export interface EmbeddedImage {
  readonly type: string;
  readonly base64: string;
}

export interface ReportClip {
  readonly id: string;
  readonly score: number;
  readonly weight: number;
  readonly seen: number;
  readonly votes: number;
  /** The clip's motion descriptors (sample view's `motion`), or null without a profile. */
  readonly motion: Record<string, number | boolean | string> | null;
  readonly previews: Partial<Record<'strip' | 'anim' | 'flow', EmbeddedImage>>;
}

export interface ReportExplain {
  readonly profiled: number;
  readonly harmful: number;
  readonly helpful: number;
  readonly descriptors: ReadonlyArray<{
    name: string;
    auc: number | null;
    spearman: number | null;
    harmfulMean: number | null;
    helpfulMean: number | null;
  }>;
  readonly summary: readonly string[];
}

export interface ReportData {
  /** `GET /v1/runs/:run` as answered. */
  readonly run: Record<string, unknown> & { id: string; samples: number; lastStep: number; weightsVersion: number };
  readonly daemon: string;
  readonly generatedAt: string;
  /** Every sample's score and weight (the Arrow export). */
  readonly scores: Float64Array;
  readonly weights: Float64Array;
  readonly harmful: readonly ReportClip[];
  readonly helpful: readonly ReportClip[];
  readonly explain: ReportExplain | null;
  readonly evaluation: { readonly report: EvalReport; readonly labelsFile: string } | null;
}

/** Escapes text for HTML content and attribute values. */
export function esc(v: unknown): string {
  return String(v).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

/** A number for a table: integers grouped, small or large values in exponent form, 4 decimals otherwise. */
export function num(v: unknown): string {
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v !== 'number' || !Number.isFinite(v)) return '–';
  if (Number.isInteger(v)) return v.toLocaleString('en');
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : v.toFixed(4);
}

/** Counts of `values` in `bins` equal bins over [lo, hi] (the last bin closed); non-finite values are left out. */
export function histogram(values: Float64Array, bins: number, lo: number, hi: number): number[] {
  const counts = new Array<number>(bins).fill(0);
  const width = hi > lo ? (hi - lo) / bins : 1;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    const b = Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / width)));
    counts[b]!++;
  }
  return counts;
}

/** An SVG bar chart of a histogram: bars carry `data-count`, the axis shows the range and the tallest bar. */
export function histogramSvg(counts: readonly number[], lo: number, hi: number, colour: string, label: string): string {
  const w = 560;
  const h = 180;
  const plotH = h - 34;
  const max = Math.max(1, ...counts);
  const bw = w / Math.max(1, counts.length);
  const bars = counts
    .map((c, i) => {
      const bh = (plotH * c) / max;
      return `<rect data-count="${c}" x="${(i * bw + 1).toFixed(1)}" y="${(plotH - bh + 14).toFixed(1)}" width="${Math.max(1, bw - 2).toFixed(1)}" height="${bh.toFixed(1)}" fill="${colour}"><title>${esc(num(lo + (i * (hi - lo)) / counts.length))} … ${esc(num(lo + ((i + 1) * (hi - lo)) / counts.length))}: ${c}</title></rect>`;
    })
    .join('');
  return (
    `<svg class="hist" role="img" aria-label="${esc(label)}" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}">` +
    `<text x="2" y="10" class="ax">max ${esc(num(max))}</text>${bars}` +
    `<line x1="0" x2="${w}" y1="${plotH + 14.5}" y2="${plotH + 14.5}" stroke="#8a93a3"/>` +
    `<text x="2" y="${h - 4}" class="ax">${esc(num(lo))}</text>` +
    `<text x="${w - 2}" y="${h - 4}" class="ax" text-anchor="end">${esc(num(hi))}</text>` +
    `<text x="${w / 2}" y="${h - 4}" class="ax" text-anchor="middle">${esc(label)}</text></svg>`
  );
}

function img(image: EmbeddedImage | undefined, cls: string, alt: string): string {
  return image === undefined ? '' : `<img class="${cls}" alt="${esc(alt)}" src="data:${esc(image.type)};base64,${image.base64}">`;
}

function clipCard(c: ReportClip, rank: number, kind: 'harmful' | 'helpful'): string {
  const m = c.motion;
  const facts: Array<[string, unknown]> = [
    ['score', c.score],
    ['weight', c.weight],
    ['seen', c.seen],
    ['votes', c.votes],
    ...(m === null
      ? []
      : ([
          ['jitter', m['jitter']],
          ['static', m['staticFraction']],
          ['dynamic degree', m['dynamicDegree']],
          ['reversals', m['reversals']],
        ] as Array<[string, unknown]>)),
  ];
  const images =
    m === null
      ? '<p class="muted">not profiled: run <code>motive profile</code> for previews and descriptors</p>'
      : `<div class="media">${img(c.previews.anim, 'anim', `${c.id} animation`)}${img(c.previews.flow, 'flow', `${c.id} flow heat map`)}</div>` +
        img(c.previews.strip, 'strip', `${c.id} frame strip`);
  return (
    `<article class="clip ${kind}" data-id="${esc(c.id)}"><h3><span class="rank">${rank}</span> ${esc(c.id)}</h3>` +
    `<dl>${facts.map(([k, v]) => `<div><dt>${esc(k)}</dt><dd>${esc(num(v))}</dd></div>`).join('')}</dl>${images}</article>`
  );
}

function tableHtml(id: string, head: readonly string[], rows: ReadonlyArray<readonly unknown[]>): string {
  const cell = (v: unknown): string => (typeof v === 'number' || v === null ? `<td class="num">${esc(num(v))}</td>` : `<td>${esc(v)}</td>`);
  return (
    `<table id="${id}"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead>` +
    `<tbody>${rows.map((r) => `<tr>${r.map(cell).join('')}</tr>`).join('')}</tbody></table>`
  );
}

function evaluationHtml(e: { report: EvalReport; labelsFile: string }): string {
  const r = e.report;
  const row = (g: GroupFigures, name = g.label): unknown[] => [
    name,
    g.n,
    g.unscored,
    g.auc,
    g.ci === null ? '–' : `${num(g.ci[0])}–${num(g.ci[1])}`,
    g.precisionAtTop,
    g.baseRate,
    g.meanWeight,
  ];
  return (
    `<p>${esc(r.ranked)} scored labelled clip(s) from <code>${esc(e.labelsFile)}</code>; signal <b>${esc(r.signal)}</b> ` +
    `(${esc(r.harmful)} = more harmful); reference label “${esc(r.reference.label)}”.</p>` +
    tableHtml(
      'evaluation',
      ['label', 'n', 'unscored', 'AUC', '95% CI', `prec@${r.topSpec}`, 'base rate', 'mean weight'],
      [...r.labels.map((g) => row(g)), row(r.pooled), row(r.reference, `${r.reference.label} (reference)`)],
    ) +
    `<p class="muted">AUC: P(${esc(r.signal)} of a labelled clip more harmful than a reference clip's) + ½ P(tie); 95% CI: stratified ` +
    `bootstrap, ${esc(r.bootstrap.replicates)} replicates, seed ${esc(r.bootstrap.seed)}; prec@${esc(r.topSpec)}: share of the ` +
    `${esc(r.top)} most harmful scored labelled clips (docs/motion-profiling.md, “motive eval”).</p>`
  );
}

function configurationHtml(run: ReportData['run'], daemon: string): string {
  const skip = new Set(['querySets', 'ranks', 'voteThresholds', 'queryIds', 'projection']);
  const rows: Array<[string, unknown]> = Object.entries(run)
    .filter(([k, v]) => !skip.has(k) && (typeof v !== 'object' || v === null))
    .map(([k, v]) => [k, typeof v === 'number' ? v : String(v)]);
  const projection = run['projection'];
  if (projection !== null && typeof projection === 'object') rows.push(['projection', JSON.stringify(projection)]);
  const queryIds = run['queryIds'];
  if (Array.isArray(queryIds)) rows.push(['queryIds', queryIds.join(', ')]);
  rows.push(['daemon', daemon]);
  const sets = Array.isArray(run['querySets']) ? (run['querySets'] as Array<Record<string, unknown>>) : [];
  return (
    tableHtml('configuration', ['setting', 'value'], rows) +
    (sets.length === 0
      ? ''
      : `<h3>Query sets</h3>` +
        tableHtml(
          'query-sets',
          ['version', 'step', 'queries', 'received'],
          sets.map((q) => [q['version'], q['step'], q['queries'], String(q['receivedAt'])]),
        ))
  );
}

function finiteRange(values: Float64Array): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi === lo ? lo + 1 : hi] : [0, 1];
}

const STYLE = `
body{margin:0;font:14px/1.45 system-ui,sans-serif;color:#1d2430;background:#f6f7f9}
header{padding:18px 28px;background:#1d2430;color:#fff}header h1{margin:0;font-size:20px}header p{margin:4px 0 0;color:#b9c2d0}
main{padding:8px 28px 28px;max-width:1280px}section{background:#fff;border:1px solid #e1e4ea;border-radius:6px;padding:12px 16px;margin:14px 0}
h2{font-size:15px;margin:0 0 10px;text-transform:uppercase;letter-spacing:.04em;color:#4a5566}h3{font-size:14px;margin:10px 0 6px}
.stats{display:flex;flex-wrap:wrap;gap:26px}.stat b{display:block;font-size:22px}.stat span{color:#6b7585;font-size:12px}
.plots{display:flex;flex-wrap:wrap;gap:18px}.hist{max-width:100%;height:auto}.hist .ax{font-size:11px;fill:#6b7585}
.clips{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:12px}
.clip{border:1px solid #e1e4ea;border-radius:6px;padding:8px 10px}.clip.harmful h3{color:#b62324}.clip.helpful h3{color:#1a7f37}
.clip h3{margin:0 0 6px;word-break:break-all}.rank{display:inline-block;min-width:22px;color:#6b7585}
dl{display:flex;flex-wrap:wrap;gap:4px 14px;margin:0 0 6px}dl div{display:flex;gap:4px}dt{color:#6b7585}dd{margin:0;font-variant-numeric:tabular-nums}
.media{display:flex;gap:6px;align-items:flex-start}.media img{height:96px;border-radius:3px}.strip{display:block;width:100%;height:auto;margin-top:6px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}th,td{text-align:left;padding:3px 10px;border-bottom:1px solid #e8ebf0}td.num{text-align:right}
.muted{color:#6b7585;font-size:12px}code{font-size:12px}
`;

/** The whole report. */
export function renderReport(d: ReportData): string {
  const run = d.run;
  const [slo, shi] = finiteRange(d.scores);
  const scoreCounts = histogram(d.scores, 40, slo, shi);
  const weightCounts = histogram(d.weights, 20, 0, 1);
  const stat = (v: unknown, label: string): string => `<div class="stat"><b>${esc(num(v))}</b><span>${esc(label)}</span></div>`;
  const explain =
    d.explain === null || d.explain.profiled === 0
      ? '<p class="muted">no clip of this run is profiled: <code>motive profile</code> adds motion descriptors and previews.</p>'
      : `<p>${esc(d.explain.profiled)} profiled clip(s); the ${esc(d.explain.harmful)} most harmful against the ${esc(d.explain.helpful)} most helpful.</p>` +
        (d.explain.summary.length === 0 ? '' : `<ul>${d.explain.summary.map((l) => `<li>${esc(l)}</li>`).join('')}</ul>`) +
        tableHtml(
          'explain',
          ['descriptor', 'AUC', 'Spearman ρ', 'harmful mean', 'helpful mean'],
          d.explain.descriptors.map((x) => [x.name, x.auc, x.spearman, x.harmfulMean, x.helpfulMean]),
        );
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>Motive report — ${esc(run.id)}</title><style>${STYLE}</style></head>
<body><header><h1>Motive run report: ${esc(run.id)}</h1><p>generated ${esc(d.generatedAt)} by ${esc(d.daemon)}</p></header><main>
<section id="summary"><h2>Summary</h2><div class="stats">${stat(run.samples, 'samples')}${stat(run['sketches'], 'sketches')}${stat(run.lastStep, 'last step')}${stat(run.weightsVersion, 'weights version')}${stat(run['downweighted'], 'down-weighted')}${stat(run['quarantined'], 'quarantined')}${stat(run['queries'], 'queries')}</div></section>
<section id="distributions"><h2>Distributions</h2><div class="plots">${histogramSvg(scoreCounts, slo, shi, '#d18616', 'score')}${histogramSvg(weightCounts, 0, 1, '#539bf5', 'weight')}</div>
<p class="muted">${esc(d.scores.length)} samples: score = mean of the per-query sums (lower = more harmful); weight = the sampling weight pushed to the trainer.</p></section>
<section id="harmful"><h2>Most harmful clips</h2><div class="clips">${d.harmful.map((c, i) => clipCard(c, i + 1, 'harmful')).join('')}</div></section>
<section id="helpful"><h2>Most helpful clips</h2><div class="clips">${d.helpful.map((c, i) => clipCard(c, i + 1, 'helpful')).join('')}</div></section>
<section id="why"><h2>What separates them</h2>${explain}</section>
${d.evaluation === null ? '' : `<section id="labels"><h2>Evaluation against labels</h2>${evaluationHtml(d.evaluation)}</section>`}
<section id="config"><h2>Run configuration</h2>${configurationHtml(run, d.daemon)}</section>
</main></body></html>
`;
}
