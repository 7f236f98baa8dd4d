/**
 * Profiles clips: hash the file, decode and resize it with ffmpeg, estimate the flow of every
 * consecutive frame pair, compute the motion descriptors. Decoding runs `jobs` clips at a time
 * (ffmpeg processes); flow estimation is serialised on one onnxruntime session that uses every
 * core itself.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join, relative, resolve, dirname, isAbsolute } from 'node:path';
import { MotiveError } from '../shared/index.js';
import { computeDescriptors, DESCRIPTOR_DEFAULTS, type DescriptorOptions, type MotionDescriptors } from './descriptors.js';
import { decodeGrey, probeVideo, DEFAULT_TOOLS, type FfmpegTools } from './ffmpeg.js';
import type { FlowEstimator } from './flow-estimator.js';
import { encodePng, encodeStripAndAnim, flowHeatMap, PREVIEW_DEFAULTS, type ClipPreviews, type PreviewOptions } from './previews.js';

/** A clip to profile: the sample id the trainer uses for it, and its file. */
export interface ClipSource {
  readonly id: string;
  readonly path: string;
}

/** A finished profile: descriptors plus what they were computed from. */
export interface ClipProfile extends MotionDescriptors {
  readonly id: string;
  /** sha256 of the file's bytes, hex. */
  readonly hash: string;
  readonly path: string;
  readonly width: number;
  readonly height: number;
  readonly fps: number;
  /** Size of the analysed frames. */
  readonly analysisWidth: number;
  readonly analysisHeight: number;
  /** Every `stride`-th source frame was analysed. */
  readonly stride: number;
  readonly flowModel: string;
  readonly profiledAtMs: number;
}

export interface ProfilerOptions {
  /** Short side of the analysed frames in pixels, never upscaled (default 128). */
  readonly shortSide: number;
  /** Frames are sampled at about this rate, as VBench does: every round(fps / rate)-th frame (default 8). */
  readonly sampleFps: number;
  /** Most frames analysed per clip (default 64). */
  readonly maxFrames: number;
  readonly tools: FfmpegTools;
  readonly descriptors: DescriptorOptions;
  /** Previews to write beside each profile (previews.ts); null writes none. */
  readonly previews: PreviewOptions | null;
}

export const PROFILER_DEFAULTS: ProfilerOptions = {
  shortSide: 128,
  sampleFps: 8,
  maxFrames: 64,
  tools: DEFAULT_TOOLS,
  descriptors: DESCRIPTOR_DEFAULTS,
  previews: PREVIEW_DEFAULTS,
};

/** Flow models need sizes divisible by 8 (the shipped one by 2^(levels − 1) = 8). */
const SIZE_MULTIPLE = 8;

/** Analysis size: short side `min(shortSide, source short side)`, aspect kept, both multiples of 8. */
export function analysisSize(width: number, height: number, shortSide: number): { width: number; height: number } {
  const scale = Math.min(1, shortSide / Math.min(width, height));
  const round = (v: number): number => Math.max(SIZE_MULTIPLE, Math.round((v * scale) / SIZE_MULTIPLE) * SIZE_MULTIPLE);
  return { width: round(width), height: round(height) };
}

/** sha256 of a file, streamed. */
export async function hashFile(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Splits one CSV line (RFC 4180 quoting: `"a,b"`, `""` for a quote). */
export function splitCsvLine(line: string): string[] {
  const cells: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i] as string;
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      cells.push(cell);
      cell = '';
    } else cell += ch;
  }
  cells.push(cell);
  return cells;
}

/** File extensions taken as video when a directory is listed. */
export const VIDEO_EXTENSIONS = new Set(['.mp4', '.m4v', '.mov', '.mkv', '.webm', '.avi', '.gif', '.mpg', '.mpeg', '.ts']);

/**
 * The clips of a directory (every video file below it; id = path relative to it without the
 * extension, `/`-separated) or of a manifest: JSONL lines `{"id", "path"}` or CSV with an
 * `id,path` header. Relative manifest paths are relative to the manifest's directory.
 */
export async function listClips(source: string): Promise<ClipSource[]> {
  const info = await stat(source).catch((err: unknown) => {
    throw new MotiveError('MOTIVE_MOTION_SOURCE', `${source}: ${(err as Error).message}`, { cause: err });
  });
  if (info.isDirectory()) {
    const root = resolve(source);
    const entries = await readdir(root, { recursive: true, withFileTypes: true });
    const clips = entries
      .filter((e) => e.isFile() && VIDEO_EXTENSIONS.has(extname(e.name).toLowerCase()))
      .map((e) => {
        const path = join(e.parentPath, e.name);
        const rel = relative(root, path).split('\\').join('/');
        return { id: rel.slice(0, rel.length - extname(rel).length), path };
      });
    return clips.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
  const text = await readFile(source, 'utf8');
  const base = dirname(resolve(source));
  const at = (p: string): string => (isAbsolute(p) ? p : join(base, p));
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  if (source.toLowerCase().endsWith('.csv')) {
    const header = splitCsvLine(lines[0] ?? '').map((h) => h.trim());
    const idCol = header.indexOf('id');
    const pathCol = header.indexOf('path');
    if (idCol < 0 || pathCol < 0) throw new MotiveError('MOTIVE_MOTION_SOURCE', `${source}: the CSV header needs "id" and "path" columns`);
    return lines.slice(1).map((l) => {
      const cells = splitCsvLine(l);
      return { id: (cells[idCol] ?? '').trim(), path: at((cells[pathCol] ?? '').trim()) };
    });
  }
  return lines.map((l, i) => {
    let row: { id?: unknown; path?: unknown };
    try {
      row = JSON.parse(l) as { id?: unknown; path?: unknown };
    } catch (err) {
      throw new MotiveError('MOTIVE_MOTION_SOURCE', `${source}:${i + 1}: not JSON`, { cause: err });
    }
    if (typeof row.id !== 'string' || typeof row.path !== 'string') {
      throw new MotiveError('MOTIVE_MOTION_SOURCE', `${source}:${i + 1}: a line needs string "id" and "path"`);
    }
    return { id: row.id, path: at(row.path) };
  });
}

/** Profiles one clip whose hash is already known. */
export async function profileClip(
  clip: ClipSource,
  hash: string,
  flow: FlowEstimator,
  options: ProfilerOptions = PROFILER_DEFAULTS,
): Promise<ClipProfile> {
  return (await profileAndPreview(clip, hash, flow, { ...options, previews: null })).profile;
}

/** A profile with its previews, or the reason they could not be made (never fatal to the profile). */
export interface ProfiledClip {
  readonly profile: ClipProfile;
  readonly previews?: ClipPreviews;
  readonly previewError?: Error;
}

/**
 * Profiles one clip and, with `options.previews`, makes its previews: the strip and the animation
 * are encoded by a second ffmpeg while the analysis frames are decoded and their flow estimated;
 * the flow heat map comes from that flow.
 */
export async function profileAndPreview(
  clip: ClipSource,
  hash: string,
  flow: FlowEstimator,
  options: ProfilerOptions = PROFILER_DEFAULTS,
): Promise<ProfiledClip> {
  const video = await probeVideo(clip.path, options.tools);
  const size = analysisSize(video.width, video.height, options.shortSide);
  const stride = video.fps > 0 ? Math.max(1, Math.round(video.fps / options.sampleFps)) : 1;
  const previewOptions = options.previews;
  const encoded =
    previewOptions === null
      ? undefined
      : encodeStripAndAnim(clip.path, video.frames, stride, previewOptions, options.tools).then(
          (v) => ({ ok: true as const, v }),
          (err: unknown) => ({ ok: false as const, err: err as Error }),
        );
  let decoded;
  try {
    decoded = await decodeGrey(clip.path, { ...size, stride, maxFrames: options.maxFrames }, options.tools);
  } finally {
    await encoded;
  }
  if (decoded.count < 2) throw new MotiveError('MOTIVE_MOTION_DECODE', `${clip.path}: fewer than two frames`);
  const flows = await flow.flows(decoded.pixels, decoded.count, size.height, size.width);
  const grey = Float32Array.from(decoded.pixels, (v) => v / 255);
  const descriptors = computeDescriptors(grey, flows, decoded.count, size.height, size.width, options.descriptors);
  const profile: ClipProfile = {
    id: clip.id,
    hash,
    path: clip.path,
    width: video.width,
    height: video.height,
    fps: video.fps,
    analysisWidth: size.width,
    analysisHeight: size.height,
    stride,
    flowModel: flow.modelPath,
    profiledAtMs: Date.now(),
    ...descriptors,
  };
  if (previewOptions === null || encoded === undefined) return { profile };
  const result = await encoded;
  if (!result.ok) return { profile, previewError: result.err };
  const heat = flowHeatMap(flows, decoded.count - 1, size.height, size.width, previewOptions.flowScaleMax);
  return { profile, previews: { ...result.v, flow: encodePng(heat, size.width, size.height) } };
}

/** What happened to one clip in {@link profileAll}. */
export type ClipOutcome =
  | {
      readonly kind: 'profiled';
      readonly clip: ClipSource;
      readonly profile: ClipProfile;
      readonly previews?: ClipPreviews;
      readonly previewError?: Error;
    }
  | { readonly kind: 'skipped'; readonly clip: ClipSource }
  | { readonly kind: 'failed'; readonly clip: ClipSource; readonly error: Error };

export interface ProfileAllOptions {
  /** Clips decoded at once (ffmpeg processes). */
  readonly jobs: number;
  /** Hashes of a batch of clips → the ids whose (id, hash) is already profiled (with previews, when made), to skip. */
  readonly known: (clips: ReadonlyArray<{ id: string; hash: string }>) => Promise<ReadonlySet<string>>;
  /** Called for each clip as it finishes, in completion order; awaited (persist here). */
  readonly onOutcome: (outcome: ClipOutcome) => Promise<void>;
  readonly profiler?: ProfilerOptions;
}

/**
 * Profiles many clips with bounded parallelism. Resumable: each clip's hash is checked against
 * `known` first, and each finished profile goes to `onOutcome` at once, so an interrupted pass
 * loses only the clips in flight.
 */
export async function profileAll(clips: readonly ClipSource[], flow: FlowEstimator, options: ProfileAllOptions): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const clip = clips[next++];
      if (clip === undefined) return;
      let outcome: ClipOutcome;
      try {
        const hash = await hashFile(clip.path);
        const known = await options.known([{ id: clip.id, hash }]);
        if (known.has(clip.id)) outcome = { kind: 'skipped', clip };
        else outcome = { kind: 'profiled', clip, ...(await profileAndPreview(clip, hash, flow, options.profiler)) };
      } catch (err) {
        // A missing ffmpeg fails every clip the same way: stop instead of reporting each.
        if ((err as { code?: string }).code === 'MOTIVE_MOTION_FFMPEG_MISSING') throw err;
        outcome = { kind: 'failed', clip, error: err as Error };
      }
      await options.onOutcome(outcome);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(options.jobs, clips.length)) }, worker));
}
