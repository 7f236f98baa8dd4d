/**
 * `motive profile` writes each clip's previews beside its profile and the daemon serves them at
 * `GET /v1/runs/:run/samples/:id/preview?kind=strip|anim|flow`: media types, caching headers and
 * conditional requests (304), run scope, the 404s, bad uploads refused, a failed preview reported
 * without failing the profile, and a pass without previews redone once previews are wanted.
 *
 * Needs ffmpeg (Debian package `ffmpeg`): skipped with a message without it, except under CI=true.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../daemon/cli/cli.js';
import { MotiveClient } from '../../trainer-hooks/ts/index.js';
import { startTestDaemon, tempDir } from '../helpers/daemon.js';
import { ffmpegAvailable, writeClips, type SyntheticClip } from '../fixtures/synthetic-clips.js';

const HAVE_FFMPEG = ffmpegAvailable();
if (!HAVE_FFMPEG) {
  if (process.env['CI'] === 'true') throw new Error('ffmpeg is missing: install the Debian package "ffmpeg" (CI must not skip)');
  console.warn('skipping clip-preview tests: ffmpeg not found (install the Debian package "ffmpeg")');
}

const PNG = [0x89, 0x50, 0x4e, 0x47];

describe.skipIf(!HAVE_FFMPEG)('clip previews', () => {
  const dir = tempDir('motive-preview-clips-');
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  let url: string;
  let clips: SyntheticClip[];
  const io = { lines: [] as string[], out: (s: string) => void io.lines.push(s), err: (s: string) => void io.lines.push(s) };
  const preview = (run: string, id: string, kind: string, headers: Record<string, string> = {}) =>
    fetch(`${url}/v1/runs/${run}/samples/${encodeURIComponent(id)}/preview?kind=${kind}`, { headers });

  beforeAll(async () => {
    clips = await writeClips(dir.path, [
      { kind: 'clean', amplitude: 2, seed: 1 },
      { kind: 'jitter', amplitude: 3, seed: 2 },
      { kind: 'frozen', amplitude: 0, seed: 3 },
    ]);
    daemon = await startTestDaemon();
    url = `http://127.0.0.1:${daemon.httpPort}`;
    const c = new MotiveClient({ dtype: 'float32', address: `127.0.0.1:${daemon.grpcPort}`, runId: 'pv', dim: 2 });
    await c.connect();
    c.setQueries(1, 0, ['smooth'], Float32Array.from([1, 0]));
    const ids = [...clips.map((x) => x.id), 'never-profiled'];
    await c.send(1, 0.1, ids, Float32Array.from(ids.flatMap((_, i) => [1 - i, 0.5])));
    await c.flush();
    c.close();
  });

  afterAll(async () => {
    await daemon.cleanup();
    dir.remove();
  });

  it('redoes clips profiled without previews, then serves each kind with caching headers', { timeout: 180_000 }, async () => {
    expect(await runCli(['profile', dir.path, '--no-previews', '--url', url], io, { MOTIVE_PROGRESS: 'lines' })).toBe(0);
    expect((await preview('pv', clips[0]!.id, 'strip')).status).toBe(404);
    io.lines.length = 0;
    expect(await runCli(['profile', dir.path, '--url', url], io, { MOTIVE_PROGRESS: 'lines' })).toBe(0);
    expect(io.lines.join('')).toContain('profiled 3, skipped 0 (already profiled), failed 0 of 3 clip(s)\npreviews of 3 clip(s), failed 0');
    for (const clip of clips) {
      for (const [kind, type] of [
        ['strip', 'image/png'],
        ['anim', 'image/webp'],
        ['flow', 'image/png'],
      ] as const) {
        const res = await preview('pv', clip.id, kind);
        expect(res.status, `${clip.id} ${kind}`).toBe(200);
        expect(res.headers.get('content-type')).toBe(type);
        expect(res.headers.get('cache-control')).toMatch(/max-age=\d+/);
        const body = new Uint8Array(await res.arrayBuffer());
        if (type === 'image/png') expect([...body.subarray(0, 4)]).toEqual(PNG);
        else expect(Buffer.from(body.subarray(8, 12)).toString('latin1')).toBe('WEBP');
        const etag = res.headers.get('etag')!;
        const modified = res.headers.get('last-modified')!;
        expect(etag).toMatch(/^"[^"]+"$/);
        expect(new Date(modified).getTime()).toBeLessThanOrEqual(Date.now());
        expect((await preview('pv', clip.id, kind, { 'if-none-match': etag })).status).toBe(304);
        expect((await preview('pv', clip.id, kind, { 'if-modified-since': modified })).status).toBe(304);
        expect((await preview('pv', clip.id, kind, { 'if-none-match': '"other"' })).status).toBe(200);
      }
    }
    // Each kind is its own image.
    const etags = await Promise.all(['strip', 'anim', 'flow'].map(async (k) => (await preview('pv', clips[0]!.id, k)).headers.get('etag')));
    expect(new Set(etags).size).toBe(3);
    // A second pass finds everything stored and skips it.
    io.lines.length = 0;
    expect(await runCli(['profile', dir.path, '--url', url], io, { MOTIVE_PROGRESS: 'lines' })).toBe(0);
    expect(io.lines.join('')).toContain('profiled 0, skipped 3 (already profiled)');
  });

  it('answers 404 with a MOTIVE_ code without a preview, outside the run, or for an unknown run; 400 for a bad kind', async () => {
    const codeOf = async (res: Response): Promise<[number, string]> => [res.status, ((await res.json()) as { code: string }).code];
    expect(await codeOf(await preview('pv', 'never-profiled', 'strip'))).toEqual([404, 'MOTIVE_API_PREVIEW_NOT_FOUND']);
    expect(await codeOf(await preview('pv', 'not-in-run', 'strip'))).toEqual([404, 'MOTIVE_API_SAMPLE_NOT_FOUND']);
    expect(await codeOf(await preview('nope', clips[0]!.id, 'strip'))).toEqual([404, 'MOTIVE_API_RUN_NOT_FOUND']);
    expect((await preview('pv', clips[0]!.id, 'gif')).status).toBe(400);
  });

  it('refuses an upload whose bytes are not the kind’s image type', async () => {
    const res = await fetch(`${url}/v1/profiles/previews`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        previews: [{ id: 'x', hash: 'a'.repeat(64), kind: 'anim', data: Buffer.from('\x89PNG\r\n\x1a\nrest').toString('base64') }],
      }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe('MOTIVE_API_BAD_REQUEST');
  });

  it('reports a clip whose previews fail, stores its profile, and tries its previews again on the next pass', async () => {
    const one = tempDir('motive-preview-fail-');
    try {
      const [clip] = await writeClips(one.path, [{ kind: 'clean', amplitude: 1, seed: 9 }]);
      // An ffmpeg without the WebP encoder: decoding works, the animation does not.
      const wrapper = join(one.path, 'ffmpeg-no-webp');
      writeFileSync(
        wrapper,
        '#!/bin/sh\ncase "$*" in *libwebp_anim*) echo "Unknown encoder libwebp_anim" >&2; exit 1;; esac\nexec ffmpeg "$@"\n',
      );
      chmodSync(wrapper, 0o755);
      io.lines.length = 0;
      expect(await runCli(['profile', one.path, '--ffmpeg', wrapper, '--url', url], io, { MOTIVE_PROGRESS: 'lines' })).toBe(1);
      const text = io.lines.join('');
      expect(text).toContain('profiled 1, skipped 0 (already profiled), failed 0 of 1 clip(s)');
      expect(text).toMatch(/previews of 0 clip\(s\), failed 1\n\s+preview failed .*cannot make the clip preview.*Unknown encoder/);
      expect((await fetch(`${url}/v1/profiles/${encodeURIComponent(clip!.id)}`)).status).toBe(200);
      io.lines.length = 0;
      expect(await runCli(['profile', one.path, '--url', url], io, { MOTIVE_PROGRESS: 'lines' })).toBe(0);
      expect(io.lines.join('')).toContain('profiled 1, skipped 0');
    } finally {
      one.remove();
    }
  });
});
