/**
 * Video decoding through the ffmpeg command-line tools (Debian package `ffmpeg`), spawned per clip:
 * ffprobe reads the stream's size and rate, ffmpeg writes resized grey frames to a pipe as raw
 * bytes. Nothing is linked in, so any codec the installed ffmpeg reads is supported.
 */
import { spawn } from 'node:child_process';
import { MotiveError } from '../shared/index.js';

/** Where the tools are; defaults to `ffmpeg` / `ffprobe` on PATH. */
export interface FfmpegTools {
  readonly ffmpeg: string;
  readonly ffprobe: string;
}

export const DEFAULT_TOOLS: FfmpegTools = { ffmpeg: 'ffmpeg', ffprobe: 'ffprobe' };

/** What ffprobe says about a clip's first video stream. */
export interface VideoInfo {
  readonly width: number;
  readonly height: number;
  /** Average frame rate (frames/s); 0 when the container does not say. */
  readonly fps: number;
  /** Frames in the stream (the container's count, else duration × fps); 0 when unknown. */
  readonly frames: number;
}

/** How frames are sampled and resized for analysis. */
export interface DecodeOptions {
  /** Analysis width and height in pixels. */
  readonly width: number;
  readonly height: number;
  /** Keep every `stride`-th frame (1 = all). */
  readonly stride: number;
  /** Stop after this many analysed frames. */
  readonly maxFrames: number;
}

/** Decoded grey frames: `count` frames of `width × height` bytes. */
export interface DecodedFrames {
  readonly pixels: Uint8Array;
  readonly count: number;
}

export const FFMPEG_MISSING_HINT = 'install the Debian package "ffmpeg" (apt-get install ffmpeg) or pass --ffmpeg/--ffprobe';

function run(tool: string, args: readonly string[], maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let bytes = 0;
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      bytes += d.length;
      // ffmpeg is told how many frames to write; this only guards against a misbehaving tool.
      if (bytes > maxBytes) child.kill('SIGKILL');
      else chunks.push(d);
    });
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 4096) stderr += d.toString();
    });
    child.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT')
        reject(new MotiveError('MOTIVE_MOTION_FFMPEG_MISSING', `${tool} not found: ${FFMPEG_MISSING_HINT}`, { cause: err }));
      else reject(new MotiveError('MOTIVE_MOTION_DECODE', `${tool}: ${err.message}`, { cause: err }));
    });
    child.once('close', (code) => {
      if (code === 0) resolve(Buffer.concat(chunks));
      else
        reject(
          new MotiveError('MOTIVE_MOTION_DECODE', `${tool} exited with ${String(code)}: ${stderr.trim().split('\n').slice(-2).join(' ')}`),
        );
    });
  });
}

function parseRate(rate: string | undefined): number {
  if (rate === undefined) return 0;
  const [n, d] = rate.split('/').map(Number);
  if (n === undefined || !Number.isFinite(n)) return 0;
  if (d === undefined) return n;
  return d > 0 ? n / d : 0;
}

/** Size and frame rate of the clip's first video stream. */
export async function probeVideo(path: string, tools: FfmpegTools = DEFAULT_TOOLS): Promise<VideoInfo> {
  const out = await run(
    tools.ffprobe,
    [
      '-v',
      'error',
      '-select_streams',
      'v:0',
      '-show_entries',
      'stream=width,height,avg_frame_rate,r_frame_rate,nb_frames,duration',
      '-of',
      'json',
      path,
    ],
    1 << 20,
  );
  const parsed = JSON.parse(out.toString()) as {
    streams?: Array<{
      width?: number;
      height?: number;
      avg_frame_rate?: string;
      r_frame_rate?: string;
      nb_frames?: string;
      duration?: string;
    }>;
  };
  const s = parsed.streams?.[0];
  if (s?.width === undefined || s.height === undefined) throw new MotiveError('MOTIVE_MOTION_DECODE', `${path}: no video stream`);
  const fps = parseRate(s.avg_frame_rate) || parseRate(s.r_frame_rate);
  const counted = Number(s.nb_frames);
  const duration = Number(s.duration);
  const frames = counted > 0 ? counted : duration > 0 && fps > 0 ? Math.round(duration * fps) : 0;
  return { width: s.width, height: s.height, fps, frames };
}

/** Decodes, subsamples and resizes a clip to grey bytes. */
export async function decodeGrey(path: string, options: DecodeOptions, tools: FfmpegTools = DEFAULT_TOOLS): Promise<DecodedFrames> {
  const frameBytes = options.width * options.height;
  const filters = [
    ...(options.stride > 1 ? [`select=not(mod(n\\,${options.stride}))`] : []),
    `scale=${options.width}:${options.height}:flags=area`,
  ];
  const out = await run(
    tools.ffmpeg,
    [
      '-v',
      'error',
      '-nostdin',
      '-i',
      path,
      '-vf',
      filters.join(','),
      '-vsync',
      '0',
      '-frames:v',
      String(options.maxFrames),
      '-pix_fmt',
      'gray',
      '-f',
      'rawvideo',
      'pipe:1',
    ],
    frameBytes * options.maxFrames,
  );
  const count = Math.floor(out.length / frameBytes);
  return { pixels: new Uint8Array(out.buffer, out.byteOffset, count * frameBytes), count };
}
