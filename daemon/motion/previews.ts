/**
 * Clip previews written by `motive profile` beside each profile (docs/motion-profiling.md,
 * "Previews"):
 *
 * - `strip`: a PNG of `stripFrames` frames spread over the whole clip, side by side, each
 *   `stripHeight` pixels high;
 * - `anim`: an animated WebP of the frames the profile analyses (every `stride`-th frame, the first
 *   `animFrames` of them) at a short side of `animShortSide` pixels, played at `animFps`;
 *   neither image is ever upscaled;
 * - `flow`: a PNG heat map of the mean flow magnitude per pixel over the analysed frame pairs, at
 *   the analysis size, coloured on a fixed scale so clips compare.
 *
 * The strip and the animation come from one ffmpeg process (the clip decoded once, two outputs on
 * two pipes); the heat map is computed from the flow the profile already has and written as a PNG
 * here (zlib, no process).
 */
import { spawn } from 'node:child_process';
import { crc32, deflateSync } from 'node:zlib';
import { MotiveError } from '../shared/index.js';
import { DEFAULT_TOOLS, FFMPEG_MISSING_HINT, type FfmpegTools } from './ffmpeg.js';

export const PREVIEW_KINDS = ['strip', 'anim', 'flow'] as const;
export type PreviewKind = (typeof PREVIEW_KINDS)[number];

/** The media type of each kind. */
export const PREVIEW_TYPES: Readonly<Record<PreviewKind, string>> = { strip: 'image/png', anim: 'image/webp', flow: 'image/png' };

/** A clip's three previews, encoded. */
export type ClipPreviews = Readonly<Record<PreviewKind, Uint8Array>>;

export interface PreviewOptions {
  /** Frames in the strip (default 6). */
  readonly stripFrames: number;
  /** Height of each strip frame, pixels (default 64). */
  readonly stripHeight: number;
  /** Short side of the animation, pixels (default 96). */
  readonly animShortSide: number;
  /** Most frames in the animation (default 32: 4 s at 8 frames/s). */
  readonly animFrames: number;
  /** Playback rate of the animation, frames/s (default 8, the profile's sampling rate). */
  readonly animFps: number;
  /** libwebp quality, 0–100 (default 50). */
  readonly animQuality: number;
  /** Flow magnitude (px/frame at a 256-px short side) drawn at the top of the colour scale (default 8). */
  readonly flowScaleMax: number;
}

export const PREVIEW_DEFAULTS: PreviewOptions = {
  stripFrames: 6,
  stripHeight: 64,
  animShortSide: 96,
  animFrames: 32,
  animFps: 8,
  animQuality: 50,
  flowScaleMax: 8,
};

/** Most bytes one preview may take (ffmpeg is told the sizes; this guards against a misbehaving tool). */
export const MAX_PREVIEW_BYTES = 4 * 1024 * 1024;

/** Runs ffmpeg with outputs on fd 1 (strip) and fd 3 (animation). */
function runTwoOutputs(tool: string, args: readonly string[]): Promise<[Buffer, Buffer]> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    const outs: [Buffer[], Buffer[]] = [[], []];
    const bytes = [0, 0];
    let stderr = '';
    const collect = (i: 0 | 1) => (d: Buffer) => {
      bytes[i]! += d.length;
      if ((bytes[i] as number) > MAX_PREVIEW_BYTES) child.kill('SIGKILL');
      else outs[i].push(d);
    };
    (child.stdio[1] as NodeJS.ReadableStream).on('data', collect(0));
    (child.stdio[3] as NodeJS.ReadableStream).on('data', collect(1));
    (child.stdio[2] as NodeJS.ReadableStream).on('data', (d: Buffer) => {
      if (stderr.length < 4096) stderr += d.toString();
    });
    child.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT')
        reject(new MotiveError('MOTIVE_MOTION_FFMPEG_MISSING', `${tool} not found: ${FFMPEG_MISSING_HINT}`, { cause: err }));
      else reject(new MotiveError('MOTIVE_MOTION_PREVIEW', `${tool}: ${err.message}`, { cause: err }));
    });
    child.once('close', (code) => {
      if (code !== 0) {
        const tail = stderr.trim().split('\n').slice(-2).join(' ');
        reject(new MotiveError('MOTIVE_MOTION_PREVIEW', `${tool} exited with ${String(code)}: ${tail}`));
      } else resolve([Buffer.concat(outs[0]), Buffer.concat(outs[1])]);
    });
  });
}

/**
 * The strip and the animation of a clip. `frames` is the clip's frame count (0 when unknown: the
 * strip then takes every `8 · stride`-th frame); `stride` the profile's frame stride.
 */
export async function encodeStripAndAnim(
  path: string,
  frames: number,
  stride: number,
  options: PreviewOptions = PREVIEW_DEFAULTS,
  tools: FfmpegTools = DEFAULT_TOOLS,
): Promise<{ strip: Uint8Array; anim: Uint8Array }> {
  const n = options.stripFrames;
  const stripStep = frames > 0 ? Math.max(1, Math.floor(frames / n)) : 8 * stride;
  const s = options.animShortSide;
  const graph = [
    '[0:v]split=2[a][b]',
    `[a]select=not(mod(n\\,${stripStep})),scale=-2:'min(${options.stripHeight}\\,ih)':flags=area,tile=${n}x1[strip]`,
    // Short side min(animShortSide, the clip's): never upscaled.
    `[b]select=not(mod(n\\,${stride})),scale='if(gt(iw,ih),-2,min(${s}\\,ih))':'if(gt(iw,ih),min(${s}\\,ih),-2)':flags=area,setpts=N/${options.animFps}/TB[anim]`,
  ].join(';');
  const [strip, anim] = await runTwoOutputs(tools.ffmpeg, [
    '-v',
    'error',
    '-nostdin',
    '-i',
    path,
    '-filter_complex',
    graph,
    '-map',
    '[strip]',
    '-frames:v',
    '1',
    '-c:v',
    'png',
    '-f',
    'image2pipe',
    'pipe:1',
    '-map',
    '[anim]',
    '-frames:v',
    String(options.animFrames),
    '-c:v',
    'libwebp_anim',
    '-quality',
    String(options.animQuality),
    '-loop',
    '0',
    '-f',
    'webp',
    'pipe:3',
  ]);
  if (strip.length === 0 || anim.length === 0) throw new MotiveError('MOTIVE_MOTION_PREVIEW', `${path}: ffmpeg wrote no preview`);
  return { strip, anim };
}

/** Colour stops of the heat map (the "inferno" colour map at 0, ¼, ½, ¾, 1): dark = still, bright = moving. */
export const HEAT_STOPS: ReadonlyArray<readonly [number, number, number]> = [
  [0, 0, 4],
  [87, 16, 110],
  [188, 55, 84],
  [249, 142, 9],
  [252, 255, 164],
];

/** The heat map colour of `t` in [0, 1] (clamped), linear between the stops. */
export function heatColour(t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (HEAT_STOPS.length - 1);
  const i = Math.min(HEAT_STOPS.length - 2, Math.floor(x));
  const f = x - i;
  const a = HEAT_STOPS[i] as readonly [number, number, number];
  const b = HEAT_STOPS[i + 1] as readonly [number, number, number];
  return [0, 1, 2].map((c) => Math.round((a[c] as number) + f * ((b[c] as number) - (a[c] as number)))) as [number, number, number];
}

/**
 * Mean flow magnitude per pixel over `pairs` flow fields ([pairs × 2 × height × width], pixels at
 * that size), in px/frame at a 256-px short side (the descriptors' unit), as RGB bytes coloured by
 * {@link heatColour}(magnitude / `scaleMax`).
 */
export function flowHeatMap(flows: Float32Array, pairs: number, height: number, width: number, scaleMax: number): Uint8Array {
  const pixels = height * width;
  const scale = 256 / Math.min(height, width);
  const sum = new Float64Array(pixels);
  for (let t = 0; t < pairs; t++) {
    const base = t * 2 * pixels;
    for (let p = 0; p < pixels; p++) sum[p]! += Math.hypot(flows[base + p] as number, flows[base + pixels + p] as number);
  }
  const rgb = new Uint8Array(pixels * 3);
  for (let p = 0; p < pixels; p++) {
    const mean = pairs > 0 ? ((sum[p] as number) / pairs) * scale : 0;
    rgb.set(heatColour(mean / scaleMax), p * 3);
  }
  return rgb;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

/** An 8-bit RGB PNG of `rgb` ([height × width × 3] bytes), filter 0 on every row. */
export function encodePng(rgb: Uint8Array, width: number, height: number): Uint8Array {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) raw.set(rgb.subarray(y * width * 3, (y + 1) * width * 3), y * (width * 3 + 1) + 1);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', new Uint8Array(0)),
  ]);
}
