/**
 * Data lifecycle and limits: delete a run, back up a running daemon and restore the copy, refuse a
 * store of another format, cap runs and samples, and reject seqs / steps that go backwards within
 * one stream — each with its error code and the stored state unchanged.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { open } from 'lmdb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MotiveClient } from '../../trainer-hooks/ts/index.js';
import { runCli } from '../../daemon/cli/cli.js';
import { STORE_FORMAT_VERSION, Store, type RunState } from '../../daemon/store/index.js';
import { runSegmentsDir } from '../../daemon/store/segments.js';
import { startTestDaemon, tempDir } from '../helpers/daemon.js';
import { batch, hello, rawStream, type DaemonReply } from '../helpers/raw-stream.js';

const ADMIN = 'admin-token-0001';

async function feed(port: number, runId: string, ids: string[]): Promise<void> {
  const c = new MotiveClient({
    dtype: 'float32',
    address: `127.0.0.1:${port}`,
    runId,
    dim: 3,
    projection: { kind: 'gaussian', seed: 1, fingerprint: 'fp-1' },
  });
  await c.connect();
  c.setQueries(1, 0, ['q'], Float32Array.from([1, 1, 0]));
  await c.send(0, 0.5, ids, Float32Array.from(ids.flatMap((_, i) => [i + 1, -i, 0.5])));
  await c.flush();
  c.close();
}

function quiet(): { io: { out: (s: string) => void; err: (s: string) => void }; text: () => string } {
  const chunks: string[] = [];
  return { io: { out: (s) => chunks.push(s), err: (s) => chunks.push(s) }, text: () => chunks.join('') };
}

describe('run deletion, backup and restore', () => {
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  const dir = tempDir();
  const env = () => ({ MOTIVE_URL: `http://127.0.0.1:${daemon.httpPort}`, MOTIVE_TOKEN: ADMIN });
  beforeAll(async () => {
    daemon = await startTestDaemon({ auth: { tokens: [{ name: 'ops', token: ADMIN, role: 'admin', runs: null }], trainerToken: null } });
  });
  afterAll(async () => {
    await daemon.cleanup();
    dir.remove();
  });

  it('backs up a running daemon and restores the copy into a working store', async () => {
    // Admin tokens may attach too.
    const c = new MotiveClient({ dtype: 'float32', address: `127.0.0.1:${daemon.grpcPort}`, runId: 'keep', dim: 3, token: ADMIN });
    await c.connect();
    c.setQueries(1, 0, ['q'], Float32Array.from([1, 1, 0]));
    await c.send(0, 0.5, ['a', 'b'], Float32Array.from([1, 0, 0, 0, 1, 0]));
    await c.flush();
    c.close();
    // Flushed, so the samples are in the samples environment, not only in the log.
    await daemon.store.flush();
    expect(daemon.store.flushStats()).toMatchObject({ dirtySamples: 0, logEntries: 0 });
    const out = join(dir.path, 'backup');
    const q = quiet();
    expect(await runCli(['backup', '--out', out], q.io, env())).toBe(0);
    expect(q.text()).toMatch(/backup written to .*backup/);
    expect(await runCli(['backup', '--out', out], q.io, env())).toBe(1);
    expect(q.text()).toMatch(/MOTIVE_API_BACKUP: backup failed: .* already holds a store/);

    const restored = join(dir.path, 'restored');
    const r = quiet();
    expect(await runCli(['restore', '--from', out, '--data-dir', restored], r.io, {})).toBe(0);
    expect(r.text()).toContain('restored 1 run(s)');
    const copy = await Store.open({ dataDir: restored, mapSizeBytes: 1 << 30 });
    const orig = daemon.store.run('keep')!;
    const back = copy.run('keep')!;
    // The evidence, not the store's bookkeeping (log positions, pending rows), must match.
    const evidence = (r: RunState): unknown[] =>
      [...r.samples.values()].map((s) => ({ id: s.id, seen: s.seen, lastStep: s.lastStep, weight: s.weight, sums: r.sumsOf(s) }));
    expect(evidence(back)).toEqual(evidence(orig));
    expect(back.queryIds).toEqual(orig.queryIds);
    expect(copy.embedding('keep', 'a', 3)).toEqual(daemon.store.embedding('keep', 'a', 3));
    await copy.close();
    expect(await runCli(['restore', '--from', out, '--data-dir', restored], quiet().io, {})).toBe(1);
  });

  it('deletes a run: its streams end, its data is gone, other runs stay', async () => {
    const s = rawStream(`127.0.0.1:${daemon.grpcPort}`);
    s.write(hello('doomed', 3, { token: ADMIN }));
    expect(await s.next()).toHaveProperty('welcome');
    s.write(batch(1, ['x', 'y'], Float32Array.from([1, 2, 3, 4, 5, 6])));
    expect(await s.next()).toEqual({ ack: { seq: 1 } });
    // Flushed, so the run has record segments on disk.
    await daemon.store.flush();
    const records = join(daemon.dataDir, 'records');
    const segmentsDir = runSegmentsDir(records, 'doomed');
    expect(readdirSync(segmentsDir).length).toBeGreaterThan(0);
    const q = quiet();
    expect(await runCli(['runs', 'delete', 'doomed'], q.io, env())).toBe(2);
    expect(q.text()).toContain('add --yes');
    expect(await runCli(['runs', 'delete', 'doomed', '--yes'], q.io, env())).toBe(0);
    expect(((await s.next()) as DaemonReply).error).toMatchObject({ code: 'MOTIVE_INGEST_RUN_DELETED', fatal: true });
    s.close();
    expect(daemon.store.run('doomed')).toBeUndefined();
    expect(daemon.store.embedding('doomed', 'x', 3)).toBeUndefined();
    // Its segments are gone, and nothing is left of the rename that removed them.
    expect(existsSync(segmentsDir)).toBe(false);
    expect(readdirSync(records).filter((name) => name.endsWith('.deleted'))).toEqual([]);
    expect(daemon.store.run('keep')).toBeDefined();
    const res = await fetch(`http://127.0.0.1:${daemon.httpPort}/v1/runs/doomed`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(res.status).toBe(404);
    // Deleted for good: a restart does not bring it back.
    await daemon.stop();
    daemon = await startTestDaemon({ auth: { tokens: [{ name: 'ops', token: ADMIN, role: 'admin', runs: null }] } }, daemon.dataDir);
    expect(daemon.store.run('doomed')).toBeUndefined();
    expect(daemon.store.run('keep')?.samples.size).toBe(2);
  });
});

describe('store format version', () => {
  it('refuses a store written in another format, naming both versions', async () => {
    const dir = tempDir();
    const db = open({ path: dir.path, maxDbs: 16 });
    await db.openDB({ name: 'meta' }).put('format', 99);
    await db.close();
    await expect(Store.open({ dataDir: dir.path, mapSizeBytes: 1 << 30 })).rejects.toThrow(
      `holds format 99, this daemon reads format ${STORE_FORMAT_VERSION}`,
    );
    expect(existsSync(join(dir.path, 'data.mdb'))).toBe(true);
    dir.remove();
  });
});

describe('limits and ordering', () => {
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  beforeAll(async () => {
    daemon = await startTestDaemon({ limits: { maxRuns: 2, maxSamplesPerRun: 3 } });
    await feed(daemon.grpcPort, 'one', ['a', 'b']);
    await feed(daemon.grpcPort, 'two', ['a']);
  });
  afterAll(async () => {
    await daemon.cleanup();
  });

  it('refuses a new run beyond maxRuns and stores nothing', async () => {
    const s = rawStream(`127.0.0.1:${daemon.grpcPort}`);
    s.write(hello('three', 3));
    expect(((await s.next()) as DaemonReply).error).toMatchObject({ code: 'MOTIVE_INGEST_LIMIT_RUNS', fatal: true });
    s.close();
    expect(
      daemon.store
        .runs()
        .map((r) => r.info.id)
        .sort(),
    ).toEqual(['one', 'two']);
  });

  it('rejects a batch that would pass maxSamplesPerRun, alone', async () => {
    const s = rawStream(`127.0.0.1:${daemon.grpcPort}`);
    s.write(hello('one', 3, { rank: 0 }));
    expect(await s.next()).toHaveProperty('welcome');
    const before = daemon.store.run('one')!.samples.get('a')!.seen;
    s.write(batch(2, ['a', 'c', 'd'], new Float32Array(9).fill(1), 1));
    expect(((await s.next()) as DaemonReply).error).toMatchObject({ code: 'MOTIVE_INGEST_LIMIT_SAMPLES', seq: 2, fatal: false });
    s.write(batch(3, ['a', 'c'], new Float32Array(6).fill(1), 1));
    expect(await s.next()).toEqual({ ack: { seq: 3 } });
    expect([...daemon.store.run('one')!.samples.keys()].sort()).toEqual(['a', 'b', 'c']);
    expect(daemon.store.run('one')!.samples.get('a')!.seen).toBe(before + 1);
    s.close();
  });

  it('rejects seqs and steps that go backwards within a stream; resends on a new stream are acknowledged', async () => {
    const s = rawStream(`127.0.0.1:${daemon.grpcPort}`);
    s.write(hello('two', 3));
    expect(await s.next()).toHaveProperty('welcome');
    const v = Float32Array.from([1, 0, 0]);
    const run = daemon.store.run('two')!;
    const batches = run.batches;
    s.write(batch(5, ['a'], v, 10));
    s.write(batch(4, ['a'], v, 11));
    s.write(batch(6, ['a'], v, 9));
    s.write(batch(7, ['a'], v, 10));
    // Rejections are immediate, acks wait for the commit: compare without order.
    const replies = [await s.next(), await s.next(), await s.next(), await s.next()] as DaemonReply[];
    expect(replies.filter((m) => m.ack).map((m) => m.ack!.seq)).toEqual([5, 7]);
    const errors = replies.filter((m) => m.error).map((m) => m.error!);
    expect(errors).toHaveLength(2);
    expect(errors.find((e) => e.seq === 4)).toMatchObject({ code: 'MOTIVE_INGEST_SEQ_ORDER', fatal: false });
    expect(errors.find((e) => e.seq === 6)).toMatchObject({ code: 'MOTIVE_INGEST_STEP_BACKWARDS', fatal: false });
    expect(run.batches).toBe(batches + 2);
    s.close();
    // A trainer resuming from a checkpoint: new stream, earlier step, next seq: accepted.
    const r = rawStream(`127.0.0.1:${daemon.grpcPort}`);
    r.write(hello('two', 3));
    expect(((await r.next()) as DaemonReply).welcome?.lastCommittedSeq).toBe(7);
    r.write(batch(8, ['a'], v, 3));
    expect(await r.next()).toEqual({ ack: { seq: 8 } });
    r.close();
  });
});
