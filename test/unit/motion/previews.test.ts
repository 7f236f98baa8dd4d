/**
 * Clip previews (daemon/motion/previews.ts): the flow heat map's colours against a plain float64
 * computation, read back from the PNG by ffmpeg's own decoder; the strip's and the animation's
 * sizes and frame counts from the files themselves (PNG header, WebP RIFF chunks).
 *
 * Needs ffmpeg (Debian package `ffmpeg`): skipped with a message without it, except under CI=true.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { encodePng, encodeStripAndAnim, flowHeatMap, PREVIEW_DEFAULTS } from '../../../daemon/motion/index.js';
import { tempDir } from '../../helpers/daemon.js';
import { CLIP_FRAMES, CLIP_SIZE, ffmpegAvailable, writeClips } from '../../fixtures/synthetic-clips.js';

const HAVE_FFMPEG = ffmpegAvailable();
if (!HAVE_FFMPEG) {
  if (process.env['CI'] === 'true') throw new Error('ffmpeg is missing: install the Debian package "ffmpeg" (CI must not skip)');
  console.warn('skipping preview tests: ffmpeg not found (install the Debian package "ffmpeg")');
}

/** RGB bytes of a PNG, decoded by ffmpeg. */
function decodePng(png: Uint8Array): Buffer {
  const r = spawnSync('ffmpeg', ['-v', 'error', '-f', 'png_pipe', '-i', 'pipe:0', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], {
    input: png,
  });
  if (r.status !== 0) throw new Error(r.stderr.toString());
  return r.stdout;
}

/** The inferno stops at 0, ¼, ½, ¾, 1, interpolated linearly and rounded: the heat map's documented scale. */
function referenceColour(t: number): number[] {
  const stops = [
    [0, 0, 4],
    [87, 16, 110],
    [188, 55, 84],
    [249, 142, 9],
    [252, 255, 164],
  ];
  const x = Math.min(1, Math.max(0, t)) * 4;
  const i = Math.min(3, Math.floor(x));
  return [0, 1, 2].map((c) => Math.round(stops[i]![c]! + (x - i) * (stops[i + 1]![c]! - stops[i]![c]!)));
}

describe('flow heat map', () => {
  it('colours the mean flow magnitude per pixel, in px/frame at a 256-px short side', () => {
    const h = 16;
    const w = 24;
    const pairs = 3;
    const pixels = h * w;
    const flows = new Float32Array(pairs * 2 * pixels);
    for (let t = 0; t < pairs; t++)
      for (let p = 0; p < pixels; p++) {
        flows[t * 2 * pixels + p] = ((p % w) / w) * 0.6 * (t + 1) - 0.1;
        flows[t * 2 * pixels + pixels + p] = (Math.floor(p / w) / h) * 0.3 - 0.05 * t;
      }
    const scaleMax = 8;
    const png = encodePng(flowHeatMap(flows, pairs, h, w, scaleMax), w, h);
    expect([...png.subarray(16, 24)]).toEqual([0, 0, 0, w, 0, 0, 0, h]);
    const rgb = decodePng(png);
    expect(rgb.length).toBe(pixels * 3);
    let moving = 0;
    for (let p = 0; p < pixels; p++) {
      let sum = 0;
      for (let t = 0; t < pairs; t++) sum += Math.hypot(flows[t * 2 * pixels + p]!, flows[t * 2 * pixels + pixels + p]!);
      const mean = (sum / pairs) * (256 / h);
      if (mean > scaleMax / 2) moving++;
      expect([...rgb.subarray(p * 3, p * 3 + 3)], `pixel ${p}`).toEqual(referenceColour(mean / scaleMax));
    }
    // The test covers the scale, its clamped top included.
    expect(moving).toBeGreaterThan(pixels / 4);
  });
});

/** The RIFF chunks of a WebP file: fourcc and payload. */
function riffChunks(data: Uint8Array): Array<{ id: string; body: Buffer }> {
  const b = Buffer.from(data);
  expect(b.toString('latin1', 0, 4)).toBe('RIFF');
  expect(b.readUInt32LE(4) + 8).toBe(b.length);
  expect(b.toString('latin1', 8, 12)).toBe('WEBP');
  const out: Array<{ id: string; body: Buffer }> = [];
  for (let at = 12; at + 8 <= b.length;) {
    const size = b.readUInt32LE(at + 4);
    out.push({ id: b.toString('latin1', at, at + 4), body: b.subarray(at + 8, at + 8 + size) });
    at += 8 + size + (size % 2);
  }
  return out;
}

describe.skipIf(!HAVE_FFMPEG)('strip and animation', () => {
  const dir = tempDir('motive-previews-');
  afterAll(() => dir.remove());

  it('writes a strip of frames spread over the clip and an animation of the analysed frames, never upscaled', async () => {
    const [clip] = await writeClips(dir.path, [{ kind: 'clean', amplitude: 2, seed: 3 }]);
    const { strip, anim } = await encodeStripAndAnim(clip!.path, CLIP_FRAMES, 2);
    const png = Buffer.from(strip);
    // 6 frames of 64 × 64 (the clip is 64 px: min(stripHeight, height)).
    expect(png.readUInt32BE(16)).toBe(PREVIEW_DEFAULTS.stripFrames * CLIP_SIZE);
    expect(png.readUInt32BE(20)).toBe(CLIP_SIZE);
    const chunks = riffChunks(anim);
    const vp8x = chunks.find((c) => c.id === 'VP8X')!.body;
    expect(vp8x.readUIntLE(4, 3) + 1).toBe(CLIP_SIZE);
    expect(vp8x.readUIntLE(7, 3) + 1).toBe(CLIP_SIZE);
    // Every 2nd of the 16 frames.
    expect(chunks.filter((c) => c.id === 'ANMF').length).toBe(CLIP_FRAMES / 2);
  });

  it('fails with MOTIVE_MOTION_PREVIEW on a file that is not a video', async () => {
    const bad = `${dir.path}/bad.mp4`;
    (await import('node:fs')).writeFileSync(bad, 'not a video');
    await expect(encodeStripAndAnim(bad, 0, 1)).rejects.toMatchObject({ code: 'MOTIVE_MOTION_PREVIEW' });
  });
});
