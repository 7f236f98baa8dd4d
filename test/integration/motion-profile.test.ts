/**
 * `motive profile` on synthetic clips rendered to real mp4 files: clean motion, jitter and frozen
 * clips. The descriptors separate jitter and frozen clips from clean ones (AUC ≥ 0.9), dynamic
 * degree orders clean clips by their motion amplitude, profiles show up in the sample views and
 * the explain summary, and a second pass skips every clip (resumable).
 *
 * Needs ffmpeg (Debian package `ffmpeg`): skipped with a message without it, except under CI=true.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lkFlowModel } from '../../daemon/motion/index.js';
import { runCli } from '../../daemon/cli/cli.js';
import { MotiveClient } from '../../trainer-hooks/ts/index.js';
import { startTestDaemon, tempDir } from '../helpers/daemon.js';
import { auc, ffmpegAvailable, spearman, writeClips, type ClipSpec, type SyntheticClip } from '../fixtures/synthetic-clips.js';

const HAVE_FFMPEG = ffmpegAvailable();
if (!HAVE_FFMPEG) {
  if (process.env['CI'] === 'true') throw new Error('ffmpeg is missing: install the Debian package "ffmpeg" (CI must not skip)');
  console.warn('skipping motion-profile tests: ffmpeg not found (install the Debian package "ffmpeg")');
}

interface ProfileJson {
  id: string;
  dynamic: boolean;
  dynamicDegree: number;
  flowMean: number;
  flowTop5: number;
  jitter: number;
  reversals: number;
  staticFraction: number;
  sceneCuts: number;
  frames: number;
}

function specs(): ClipSpec[] {
  const out: ClipSpec[] = [];
  let seed = 1;
  for (const a of [0.5, 1, 1.5, 2, 2.5])
    out.push({ kind: 'clean', amplitude: a, seed: seed++ }, { kind: 'clean', amplitude: a, seed: seed++ });
  for (const a of [1.5, 2, 2.5, 3, 4]) out.push({ kind: 'jitter', amplitude: a, seed: seed++ });
  for (let i = 0; i < 5; i++) out.push({ kind: 'frozen', amplitude: 0, seed: seed++ });
  return out;
}

describe.skipIf(!HAVE_FFMPEG)('motive profile on synthetic mp4 clips', () => {
  const dir = tempDir('motive-clips-');
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  let url: string;
  let clips: SyntheticClip[];
  const io = { lines: [] as string[], out: (s: string) => void io.lines.push(s), err: (s: string) => void io.lines.push(s) };

  beforeAll(async () => {
    clips = await writeClips(dir.path, specs());
    daemon = await startTestDaemon();
    url = `http://127.0.0.1:${daemon.httpPort}`;
    // A run over the same clip ids: clean clips help the motion query, jitter and frozen ones hurt it.
    const c = new MotiveClient({ dtype: 'float32', address: `127.0.0.1:${daemon.grpcPort}`, runId: 'sprites', dim: 2 });
    await c.connect();
    c.setQueries(1, 0, ['smooth'], Float32Array.from([1, 0]));
    const sketches = clips.flatMap((clip, i) => (clip.kind === 'clean' ? [1, 0.1 * (i % 3)] : [-1, 0.1 * (i % 3)]));
    await c.send(
      1,
      0.1,
      clips.map((clip) => clip.id),
      Float32Array.from(sketches),
    );
    await c.flush();
    c.close();
  });

  afterAll(async () => {
    await daemon.cleanup();
    dir.remove();
  });

  it('profiles every clip, then resumes by skipping them all', async () => {
    expect(await runCli(['profile', dir.path, '--run', 'sprites', '--jobs', '2', '--url', url], io, { MOTIVE_PROGRESS: 'lines' })).toBe(0);
    const text = io.lines.join('');
    expect(text).toContain(`profiled ${clips.length}, skipped 0 (already profiled), failed 0`);
    expect(text).toMatch(/profile: 20\/20 clips/);
    expect(text).toMatch(/harmful clips have (higher jitter|higher staticFraction|lower dynamicDegree|lower flowMean)/);
    io.lines.length = 0;
    expect(await runCli(['profile', dir.path, '--url', url], io, { MOTIVE_PROGRESS: 'lines' })).toBe(0);
    expect(io.lines.join('')).toContain(`profiled 0, skipped ${clips.length} (already profiled)`);
  });

  it('reports clips it cannot decode, and names the Debian package when ffmpeg is missing', async () => {
    const bad = tempDir('motive-bad-clips-');
    try {
      writeFileSync(join(bad.path, 'broken.mp4'), 'not a video');
      io.lines.length = 0;
      expect(await runCli(['profile', bad.path, '--url', url], io, { MOTIVE_PROGRESS: 'lines' })).toBe(1);
      expect(io.lines.join('')).toMatch(/failed 1 of 1 clip\(s\)\n\s+failed broken: cannot decode the clip/);
      io.lines.length = 0;
      const missing = ['profile', bad.path, '--ffprobe', join(bad.path, 'no-such-ffprobe'), '--url', url];
      expect(await runCli(missing, io, { MOTIVE_PROGRESS: 'lines' })).toBe(1);
      expect(io.lines.join('')).toContain('install the Debian package "ffmpeg"');
    } finally {
      bad.remove();
    }
  });

  it('separates jitter and frozen clips from clean ones, and orders clean clips by amplitude', async () => {
    const profiles = new Map<string, ProfileJson>();
    for (const clip of clips) {
      const res = await fetch(`${url}/v1/profiles/${encodeURIComponent(clip.id)}`);
      expect(res.status).toBe(200);
      profiles.set(clip.id, (await res.json()) as ProfileJson);
    }
    const of = (kind: SyntheticClip['kind'], key: keyof ProfileJson): number[] =>
      clips.filter((c) => c.kind === kind).map((c) => Number(profiles.get(c.id)![key]));
    const jitterAuc = auc(of('jitter', 'jitter'), of('clean', 'jitter'));
    const frozenAuc = auc(of('frozen', 'staticFraction'), of('clean', 'staticFraction'));
    const clean = clips.filter((c) => c.kind === 'clean');
    const rho = spearman(
      clean.map((c) => c.amplitude),
      clean.map((c) => profiles.get(c.id)!.dynamicDegree),
    );
    console.log(
      `motion descriptors: jitter AUC ${jitterAuc.toFixed(3)}, frozen (staticFraction) AUC ${frozenAuc.toFixed(3)}, Spearman(dynamicDegree, amplitude) ${rho.toFixed(3)}`,
    );
    expect(jitterAuc).toBeGreaterThanOrEqual(0.9);
    expect(frozenAuc).toBeGreaterThanOrEqual(0.9);
    expect(rho).toBeGreaterThanOrEqual(0.9);
    // Mean dynamic degree per amplitude rises strictly with the amplitude.
    const levels = [...new Set(clean.map((c) => c.amplitude))].sort((a, b) => a - b);
    const means = levels.map((a) => {
      const v = clean.filter((c) => c.amplitude === a).map((c) => profiles.get(c.id)!.dynamicDegree);
      return v.reduce((x, y) => x + y, 0) / v.length;
    });
    for (let i = 1; i < means.length; i++) expect(means[i]).toBeGreaterThan(means[i - 1]!);
    for (const c of clips.filter((x) => x.kind === 'frozen')) expect(profiles.get(c.id)!.dynamic).toBe(false);
    for (const p of profiles.values()) expect(p.sceneCuts).toBe(0);
  });

  it('shows descriptors beside scores in the sample views and explains the run', async () => {
    const list = (await (await fetch(`${url}/v1/runs/sprites/samples?order=harmful&limit=100`)).json()) as {
      samples: Array<{ id: string; score: number; motion: (ProfileJson & { hash: string }) | null }>;
    };
    expect(list.samples).toHaveLength(clips.length);
    for (const s of list.samples) {
      expect(s.motion).not.toBeNull();
      expect(s.motion!.hash).toMatch(/^[0-9a-f]{64}$/);
    }
    const one = (await (await fetch(`${url}/v1/runs/sprites/samples/${encodeURIComponent(clips[0]!.id)}`)).json()) as {
      motion: ProfileJson;
    };
    const direct = (await (await fetch(`${url}/v1/profiles/${encodeURIComponent(clips[0]!.id)}`)).json()) as ProfileJson;
    expect(one.motion.jitter).toBe(direct.jitter);
    expect(one.motion.dynamicDegree).toBe(direct.dynamicDegree);

    const ex = (await (await fetch(`${url}/v1/runs/sprites/explain?fraction=0.5`)).json()) as {
      profiled: number;
      harmful: number;
      helpful: number;
      descriptors: Array<{ name: string; auc: number | null; spearman: number | null }>;
      summary: string[];
    };
    expect(ex.profiled).toBe(clips.length);
    expect(ex.harmful).toBe(10);
    const byName = new Map(ex.descriptors.map((d) => [d.name, d]));
    // Harmful = the 5 jitter + 5 frozen clips (negative scores), helpful = the 10 clean ones.
    expect(byName.get('staticFraction')!.auc).toBeGreaterThanOrEqual(0.7);
    expect(byName.get('jitter')!.auc).toBeGreaterThanOrEqual(0.7);
    expect(byName.get('staticFraction')!.spearman).toBeLessThan(0);
    expect(ex.summary.join('\n')).toMatch(/harmful clips have higher staticFraction/);
    expect(ex.summary.join('\n')).toMatch(/harmful clips have higher jitter/);
  });

  it('counts a scene cut in a clip that has one', async () => {
    const cutDir = tempDir('motive-cut-clip-');
    try {
      const [clip] = await writeClips(cutDir.path, [{ kind: 'cut', amplitude: 1, seed: 99 }]);
      io.lines.length = 0;
      expect(await runCli(['profile', cutDir.path, '--url', url], io, { MOTIVE_PROGRESS: 'lines' })).toBe(0);
      const p = (await (await fetch(`${url}/v1/profiles/${encodeURIComponent(clip!.id)}`)).json()) as ProfileJson;
      expect(p.sceneCuts).toBe(1);
      expect(p.staticFraction).toBe(0);
    } finally {
      cutDir.remove();
    }
  });

  it('re-profiles with --force and another flow model given by path', async () => {
    const modelPath = join(dir.path, 'lk-3-levels.onnx');
    writeFileSync(modelPath, lkFlowModel({ levels: 3, iterations: 3 }));
    const manifest = join(dir.path, 'two.jsonl');
    writeFileSync(
      manifest,
      clips
        .slice(0, 2)
        .map((c) => JSON.stringify({ id: c.id, path: c.path }))
        .join('\n') + '\n',
    );
    io.lines.length = 0;
    expect(await runCli(['profile', manifest, '--force', '--flow-model', modelPath, '--url', url], io, { MOTIVE_PROGRESS: 'lines' })).toBe(
      0,
    );
    expect(io.lines.join('')).toContain('profiled 2, skipped 0 (already profiled), failed 0 of 2 clip(s)');
    const p = (await (await fetch(`${url}/v1/profiles/${encodeURIComponent(clips[0]!.id)}`)).json()) as { flowModel: string };
    expect(p.flowModel).toBe(modelPath);
  });
});
