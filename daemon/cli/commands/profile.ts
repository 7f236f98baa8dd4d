import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import {
  FlowEstimator,
  listClips,
  profileAll,
  PREVIEW_KINDS,
  PROFILER_DEFAULTS,
  type ClipOutcome,
  type ClipPreviews,
  type ClipProfile,
} from '../../motion/index.js';
import { UsageError, baseUrl, getJson, table, type Command, type Io } from '../common.js';

/** Progress on stderr: a redrawn bar on a terminal, otherwise a line at every quarter. */
class Progress {
  private done = 0;
  private lastQuarter = 0;
  private readonly started = performance.now();

  constructor(
    private readonly io: Io,
    private readonly total: number,
    private readonly tty: boolean,
  ) {}

  tick(label: string): void {
    this.done++;
    const elapsedS = (performance.now() - this.started) / 1000;
    const rate = this.done / Math.max(elapsedS, 1e-3);
    const etaS = (this.total - this.done) / rate;
    const text = `${this.done}/${this.total} clips  ${rate.toFixed(1)} clips/s  eta ${Math.ceil(etaS)}s  ${label}`;
    if (this.tty) {
      const width = 24;
      const filled = Math.round((width * this.done) / this.total);
      this.io.err(
        `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}`.slice(0, 160).padEnd(100) + (this.done === this.total ? '\n' : ''),
      );
      return;
    }
    const quarter = Math.floor((4 * this.done) / this.total);
    if (quarter > this.lastQuarter || this.done === this.total) {
      this.lastQuarter = quarter;
      this.io.err(`profile: ${text}\n`);
    }
  }
}

/** The rows of `POST /v1/profiles/previews` for one clip. */
function previewRows(profile: ClipProfile, previews: ClipPreviews): Array<Record<string, string>> {
  return PREVIEW_KINDS.map((kind) => ({ id: profile.id, hash: profile.hash, kind, data: Buffer.from(previews[kind]).toString('base64') }));
}

function positiveInt(name: string, v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer`);
  return n;
}

/** The profiler's settings from the command's options, checked. */
function profilerOptions(values: {
  'flow-scale': string;
  'sample-fps'?: string | undefined;
  'short-side'?: string | undefined;
  'max-frames'?: string | undefined;
  ffmpeg: string;
  ffprobe: string;
  'no-previews': boolean;
}): { profiler: typeof PROFILER_DEFAULTS; flowScale: 1 | 255 } {
  const flowScale = Number(values['flow-scale']);
  if (flowScale !== 1 && flowScale !== 255) throw new UsageError('--flow-scale must be 1 or 255');
  const sampleFps = values['sample-fps'] === undefined ? PROFILER_DEFAULTS.sampleFps : Number(values['sample-fps']);
  if (!(sampleFps > 0)) throw new UsageError('--sample-fps must be positive');
  const profiler = {
    ...PROFILER_DEFAULTS,
    shortSide: positiveInt('short-side', values['short-side'], PROFILER_DEFAULTS.shortSide),
    maxFrames: positiveInt('max-frames', values['max-frames'], PROFILER_DEFAULTS.maxFrames),
    sampleFps,
    tools: { ffmpeg: values.ffmpeg, ffprobe: values.ffprobe },
    previews: values['no-previews'] ? null : PROFILER_DEFAULTS.previews,
  };
  return { profiler, flowScale };
}

/** Prints what `GET /v1/runs/:run/explain` says of the run's motion descriptors now that its clips are profiled. */
async function printExplain(url: string, run: string, io: Io, env: NodeJS.ProcessEnv): Promise<void> {
  const ex = (await getJson(`${url}/v1/runs/${encodeURIComponent(run)}/explain`, undefined, env)) as {
    samples: number;
    profiled: number;
    harmful: number;
    helpful: number;
    descriptors: Array<{
      name: string;
      spearman: number | null;
      auc: number | null;
      harmfulMean: number | null;
      helpfulMean: number | null;
    }>;
    summary: string[];
  };
  io.out(`run ${run}: ${ex.profiled} of ${ex.samples} sample(s) profiled; ${ex.harmful} most harmful vs ${ex.helpful} most helpful\n`);
  const n = (v: number | null): string | number => (v === null ? '-' : v);
  io.out(
    table(
      ['descriptor', 'AUC', 'spearman', 'harmful mean', 'helpful mean'],
      ex.descriptors.map((d) => [d.name, n(d.auc), n(d.spearman), n(d.harmfulMean), n(d.helpfulMean)]),
    ),
  );
  for (const line of ex.summary) io.out(`  ${line}\n`);
}

export const profileCommand: Command = {
  usage: `profile <dir|manifest.jsonl|manifest.csv> [--run R] [--jobs N] [--flow-model FILE] [--flow-scale 1|255]
          [--short-side PX] [--sample-fps F] [--max-frames N] [--force] [--no-previews] [--ffmpeg PATH] [--ffprobe PATH] [--url URL]
                                     motion descriptors and previews of each clip (ffmpeg + optical flow), stored by the daemon`,
  run: async (args, io, env) => {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        run: { type: 'string' },
        jobs: { type: 'string' },
        'flow-model': { type: 'string' },
        'flow-scale': { type: 'string', default: '1' },
        'short-side': { type: 'string' },
        'sample-fps': { type: 'string' },
        'max-frames': { type: 'string' },
        force: { type: 'boolean', default: false },
        'no-previews': { type: 'boolean', default: false },
        ffmpeg: { type: 'string', default: 'ffmpeg' },
        ffprobe: { type: 'string', default: 'ffprobe' },
        url: { type: 'string' },
      },
    });
    const source = positionals[0];
    if (source === undefined || positionals.length > 1) throw new UsageError('give one directory or manifest');
    const url = baseUrl(values.url, env);
    const { profiler, flowScale } = profilerOptions(values);
    const withPreviews = profiler.previews !== null;
    const jobs = positiveInt('jobs', values.jobs, availableParallelism());
    const clips = await listClips(source);
    if (values.run !== undefined) await getJson(`${url}/v1/runs/${encodeURIComponent(values.run)}`, undefined, env);
    const modelPath = values['flow-model'] ?? env['MOTIVE_FLOW_MODEL'];
    const flow = await FlowEstimator.create({
      ...(modelPath === undefined || modelPath === '' ? {} : { modelPath }),
      inputScale: flowScale,
    });
    const progress = new Progress(io, clips.length, env['MOTIVE_PROGRESS'] !== 'lines' && process.stderr.isTTY);
    const counts = { profiled: 0, skipped: 0, failed: 0 };
    const failures: string[] = [];
    const previewFailures: string[] = [];
    const post = (path: string, body: unknown): Promise<unknown> =>
      getJson(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }, env);
    try {
      await profileAll(clips, flow, {
        jobs,
        profiler,
        known: async (batch) => {
          // --force re-profiles every clip, e.g. after switching flow models.
          if (values.force) return new Set<string>();
          // With previews on, a clip profiled without them (or whose previews failed) is done again.
          const { known } = (await post('/v1/profiles/lookup', { clips: batch, previews: withPreviews })) as { known: string[] };
          return new Set(known);
        },
        onOutcome: async (o: ClipOutcome) => {
          counts[o.kind]++;
          if (o.kind === 'profiled') {
            // Stored one clip at a time, so an interrupted pass keeps everything finished; the
            // previews before the profile, so a stored profile whose previews are missing means
            // they failed (and the next pass tries again).
            if (o.previews !== undefined) await post('/v1/profiles/previews', { previews: previewRows(o.profile, o.previews) });
            else if (o.previewError !== undefined) previewFailures.push(`${o.clip.id}: ${o.previewError.message}`);
            const { path, ...rest } = o.profile satisfies ClipProfile;
            await post('/v1/profiles', { profiles: [{ ...rest, path }] });
          } else if (o.kind === 'failed') failures.push(`${o.clip.id}: ${o.error.message}`);
          progress.tick(o.clip.id);
        },
      });
    } finally {
      await flow.close();
    }
    io.out(
      `profiled ${counts.profiled}, skipped ${counts.skipped} (already profiled), failed ${counts.failed} of ${clips.length} clip(s)\n`,
    );
    for (const f of failures) io.out(`  failed ${f}\n`);
    if (withPreviews) io.out(`previews of ${counts.profiled - previewFailures.length} clip(s), failed ${previewFailures.length}\n`);
    for (const f of previewFailures) io.out(`  preview failed ${f}\n`);
    if (values.run !== undefined) await printExplain(url, values.run, io, env);
    return counts.failed > 0 || previewFailures.length > 0 ? 1 : 0;
  },
};
