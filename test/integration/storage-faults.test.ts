/**
 * Storage faults (docs/store.md, "Damaged storage"; docs/reliability.md): each damage done to a
 * cleanly closed store ends in a named refusal (MOTIVE_STORE_CORRUPT naming the file and offset)
 * or a logged repair that loses nothing — from the store itself, from `motive restore` of a copy
 * and from `motive check`. Real LMDB and segment files in temp dirs; the CLI as a child process
 * (a SIGBUS there would show as a signal, not kill the test runner).
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, cpSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InfluenceEngine } from '../../daemon/influence/index.js';
import { Store, type RunState } from '../../daemon/store/index.js';
import { runSegmentsDir } from '../../daemon/store/segments.js';
import { runCli } from '../../daemon/cli/cli.js';
import { REPO_ROOT, tempDir } from '../helpers/daemon.js';
import { rng } from '../helpers/reference.js';
import { openStoreRun, worstEmbeddingError } from '../helpers/store-run.js';

const K = 8;
const SAMPLES = 200;
const dirs: Array<{ remove: () => void }> = [];
afterAll(() => dirs.forEach((d) => d.remove()));

/** Sends `ids` as one batch of random sketches to run `runId`; adds lr · sketch to `expected` (float64). */
async function send(
  engine: InfluenceEngine,
  runId: string,
  seq: number,
  ids: string[],
  expected: Map<string, Float64Array>,
): Promise<void> {
  const r = rng(seq * 31 + runId.length);
  const lr = 0.01 * seq;
  const sketches = Float32Array.from({ length: ids.length * K }, () => r.normal());
  ids.forEach((id, i) => {
    const g = expected.get(id) ?? new Float64Array(K);
    for (let d = 0; d < K; d++) g[d] = (g[d] as number) + lr * (sketches[i * K + d] as number);
    expected.set(id, g);
  });
  const wire = new Uint8Array(sketches.buffer.slice(0));
  await engine.submitBatch({
    runId,
    rank: 0,
    seq,
    step: seq,
    lr,
    sampleIds: ids,
    sketches,
    wire,
    wireDtype: 'float32',
    bytes: wire.byteLength,
  });
}

function runInfo(id: string): Parameters<Store['createRun']>[0] {
  return {
    id,
    dim: K,
    dtype: 'float32',
    projection: { kind: 'gaussian', seed: '1', dim: K, fingerprint: 'fp' },
    scoreMode: 'dot',
    worldSize: 1,
    createdAtMs: 0,
  };
}

/** `motive …` in this process: exit status and output. */
async function motive(...args: string[]): Promise<{ status: number; out: string }> {
  let out = '';
  const io = { out: (t: string) => void (out += t), err: (t: string) => void (out += t) };
  return { status: await runCli(args, io, {}), out };
}

/** `node bin/motive.js …` as a child process: a SIGBUS shows as its signal. */
function motiveChild(...args: string[]): { status: number | null; signal: string | null; out: string } {
  const r = spawnSync(process.execPath, ['bin/motive.js', ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, signal: r.signal, out: `${r.stdout}${r.stderr}` };
}

async function openError(dataDir: string): Promise<{ code?: string; message: string }> {
  try {
    const s = await Store.open({ dataDir, mapSizeBytes: 1 << 30 });
    await s.close();
  } catch (err) {
    return err as { code?: string; message: string };
  }
  return { message: 'opened' };
}

describe('storage faults', () => {
  /** A cleanly closed store: run `r` (SAMPLES samples over several segments) and run `other`. */
  let fixture: string;
  const expected = new Map<string, Float64Array>();
  let segDir: string;
  let segFiles: string[];

  beforeAll(async () => {
    const { dir, store, engine } = await openStoreRun('motive-faults-', dirs, K, 'dot', {
      segmentBytes: 16384,
      flushChunkSamples: 40,
      flushIntervalMs: 1e9,
      maxDirtySamples: 1e9,
    });
    const ids = Array.from({ length: SAMPLES }, (_, i) => `clip-${String(i).padStart(3, '0')}`);
    for (let seq = 1; seq <= 4; seq++) {
      await send(engine, 'r', seq, ids.slice(seq % 2 === 0 ? 0 : 50), expected);
      await store.flush();
    }
    await store.createRun(runInfo('other'));
    await send(
      engine,
      'other',
      1,
      Array.from({ length: 150 }, (_, i) => `o-${i}`),
      new Map(),
    );
    await store.close();
    fixture = dir;
    segDir = runSegmentsDir(join(dir, 'records'), 'r');
    segFiles = readdirSync(segDir).sort();
    expect(segFiles.length).toBeGreaterThanOrEqual(3);
  }, 60_000);

  /** A copy of the fixture, damaged by `damage(copyDir, runDir)`. */
  function damaged(damage: (dir: string, runDir: string) => void): string {
    const d = tempDir('motive-damaged-');
    dirs.push(d);
    cpSync(fixture, d.path, { recursive: true });
    damage(d.path, runSegmentsDir(join(d.path, 'records'), 'r'));
    return d.path;
  }

  function flip(file: string, at: number): void {
    const b = readFileSync(file);
    b[at] = (b[at] as number) ^ 0x10;
    writeFileSync(file, b);
  }

  /** The store, `motive restore` and `motive check` all refuse `dir`, naming `file` (and `offset`). */
  async function refusedEverywhere(dir: string, file: string, offset?: number, child = false): Promise<void> {
    const err = await openError(dir);
    expect(err.code).toBe('MOTIVE_STORE_CORRUPT');
    expect(err.message).toContain(file);
    if (offset !== undefined) expect(err.message).toContain(`offset ${offset}`);
    const to = tempDir('motive-restored-');
    dirs.push(to);
    const restored = child
      ? motiveChild('restore', '--from', dir, '--data-dir', to.path)
      : await motive('restore', '--from', dir, '--data-dir', to.path);
    if ('signal' in restored) expect(restored.signal).toBeNull();
    expect(restored.status).toBe(1);
    expect(restored.out).toContain('MOTIVE_STORE_CORRUPT');
    expect(readdirSync(to.path)).toEqual([]);
    const checked = await motive('check', '--data-dir', dir);
    expect(checked.status).toBe(1);
    expect(checked.out).toContain(file);
  }

  it('opens the undamaged copy with every sample exact (control)', async () => {
    const store = await Store.open({ dataDir: damaged(() => undefined), mapSizeBytes: 1 << 30 });
    expect(store.run('r')!.samples.size).toBe(SAMPLES);
    expect(worstEmbeddingError(store, K, expected)).toBeLessThan(1e-6);
    await store.close();
    expect((await motive('check', '--data-dir', fixture)).status).toBe(0);
  });

  it('cuts off a torn tail with a log line, loses nothing; motive check reports it and --repair cuts it', async () => {
    let newest = '';
    let size = 0;
    const dir = damaged((_, runDir) => {
      newest = join(runDir, segFiles.at(-1)!);
      size = statSync(newest).size;
      // A frame header announcing 200 bytes, and 40 of them: an append cut short by a crash.
      const torn = Buffer.alloc(40, 7);
      torn.writeUInt32LE(200, 0);
      appendFileSync(newest, torn);
    });
    const checked = await motive('check', '--data-dir', dir);
    expect(checked.status).toBe(1);
    expect(checked.out).toContain(`problem: torn: ${newest} at offset ${size}`);
    const copy = damaged(() => undefined);
    cpSync(dir, copy, { recursive: true });
    const repaired = await motive('check', '--data-dir', copy, '--repair');
    expect(repaired.status).toBe(0);
    expect(repaired.out).toContain('repaired: torn');
    expect((await motive('check', '--data-dir', copy)).status).toBe(0);

    const repairs: string[] = [];
    const store = await Store.open({ dataDir: dir, mapSizeBytes: 1 << 30, onRepair: (m) => repairs.push(m) });
    expect(repairs).toEqual([expect.stringContaining(`torn ${newest} at offset ${size}`)]);
    expect(statSync(newest).size).toBe(size);
    expect(store.run('r')!.samples.size).toBe(SAMPLES);
    expect(worstEmbeddingError(store, K, expected)).toBeLessThan(1e-6);
    await store.close();
  });

  it('refuses a flipped byte in a record frame, naming the segment and the frame offset', async () => {
    const dir = damaged((_, runDir) => flip(join(runDir, segFiles[0]!), 100));
    // The segment header (run id "r") is 32 bytes; the first record frame starts there.
    await refusedEverywhere(dir, join(runSegmentsDir(join(dir, 'records'), 'r'), segFiles[0]!), 32);
  });

  it('refuses a flipped byte in the middle of a segment and in the last frame of the newest one', async () => {
    const mid = damaged((_, runDir) => {
      const f = join(runDir, segFiles[1]!);
      flip(f, Math.floor(statSync(f).size / 2));
    });
    await refusedEverywhere(mid, join(runSegmentsDir(join(mid, 'records'), 'r'), segFiles[1]!));
    const last = damaged((_, runDir) => {
      const f = join(runDir, segFiles.at(-1)!);
      flip(f, statSync(f).size - 20);
    });
    await refusedEverywhere(last, join(runSegmentsDir(join(last, 'records'), 'r'), segFiles.at(-1)!));
  });

  it('refuses a segment cut in the middle, old or newest', async () => {
    for (const name of [segFiles[0]!, segFiles.at(-1)!]) {
      const dir = damaged((_, runDir) => {
        const f = join(runDir, name);
        truncateSync(f, Math.floor(statSync(f).size / 2));
      });
      await refusedEverywhere(dir, join(runSegmentsDir(join(dir, 'records'), 'r'), name));
    }
  });

  it('refuses a missing segment', async () => {
    const dir = damaged((_, runDir) => rmSync(join(runDir, segFiles[1]!)));
    await refusedEverywhere(dir, join(runSegmentsDir(join(dir, 'records'), 'r'), segFiles[1]!));
  });

  it("refuses another run's segments copied in, under new names or over the run's own", async () => {
    const extra = damaged((dir, runDir) => {
      const other = runSegmentsDir(join(dir, 'records'), 'other');
      cpSync(join(other, readdirSync(other)[0]!), join(runDir, '0000000099.seg'));
    });
    await refusedEverywhere(extra, join(runSegmentsDir(join(extra, 'records'), 'r'), '0000000099.seg'));
    const over = damaged((dir, runDir) => {
      const other = runSegmentsDir(join(dir, 'records'), 'other');
      const theirs = readdirSync(other)[0]!;
      const big = Buffer.concat([readFileSync(join(other, theirs)), readFileSync(join(runDir, segFiles[0]!))]);
      writeFileSync(join(runDir, segFiles[0]!), big);
    });
    const err = await openError(over);
    expect(err.code).toBe('MOTIVE_STORE_CORRUPT');
    expect(err.message).toContain('foreign');
    expect(err.message).toContain('run "other"');
  });

  it('never adopts the segment directory a deleted run left behind', async () => {
    const dir = damaged(() => undefined);
    const store = await Store.open({ dataDir: dir, mapSizeBytes: 1 << 30 });
    const leftover = join(dir, 'leftover');
    cpSync(runSegmentsDir(join(dir, 'records'), 'other'), leftover, { recursive: true });
    expect(await store.deleteRun('other')).toBe(true);
    // What a write in flight during the deletion leaves: the run's directory, no run.
    cpSync(leftover, runSegmentsDir(join(dir, 'records'), 'other'), { recursive: true });
    await store.close();
    const checked = await motive('check', '--data-dir', dir);
    const repairs: string[] = [];
    const again = await Store.open({ dataDir: dir, mapSizeBytes: 1 << 30, onRepair: (m) => repairs.push(m) });
    const run: RunState = await again.createRun(runInfo('other'));
    expect(run.samples.size).toBe(0);
    expect(repairs).toEqual([expect.stringContaining('removed the segment directory a deleted run "other" left behind')]);
    expect(checked.out).toContain('no run refers to it');
    await again.close();
    const reopened = await Store.open({ dataDir: dir, mapSizeBytes: 1 << 30 });
    expect(reopened.run('other')!.samples.size).toBe(0);
    await reopened.close();
  });

  it('refuses a data.mdb cut to 8 KiB or to nothing, without a SIGBUS', async () => {
    for (const size of [8192, 0]) {
      const dir = damaged((d) => truncateSync(join(d, 'data.mdb'), size));
      await refusedEverywhere(dir, join(dir, 'data.mdb'), undefined, true);
    }
  });

  it.skipIf(process.getuid?.() === 0)(
    'refuses a read-only data directory with MOTIVE_STORE_READONLY (not as root: root writes anyway)',
    async () => {
      const dir = damaged(() => undefined);
      rmSync(join(dir, 'lock.mdb'), { force: true });
      chmodSync(dir, 0o555);
      try {
        expect((await openError(dir)).code).toBe('MOTIVE_STORE_READONLY');
      } finally {
        chmodSync(dir, 0o755);
      }
    },
  );
});
