/**
 * Hostile peers against the limits: concurrent Hellos against `limits.maxRuns` and
 * `limits.maxSamplesPerRun`, Hellos whose rank or world size disagree with the run's, and extreme
 * but finite numbers in every numeric field of a batch and of the REST inputs
 * (docs/security.md, docs/wire.md).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestDaemon, tempDir } from '../helpers/daemon.js';
import { batch, hello, rawStream, type DaemonReply } from '../helpers/raw-stream.js';

const K = 4;

describe('concurrent Hellos against limits.maxRuns', () => {
  it('60 parallel Hellos for new runs with maxRuns 40 create exactly 40 runs, also after a restart', async () => {
    const dir = tempDir();
    const d = await startTestDaemon({ limits: { maxRuns: 40 } }, dir.path);
    const address = `127.0.0.1:${d.grpcPort}`;
    const streams = Array.from({ length: 60 }, () => rawStream(address));
    streams.forEach((s, i) => s.write(hello(`par-${i}`, K)));
    const replies = (await Promise.all(streams.map((s) => s.next(20_000)))) as DaemonReply[];
    streams.forEach((s) => s.close());
    const welcomed = replies.filter((r) => r.welcome !== undefined).length;
    const refused = replies.filter((r) => r.error?.code === 'MOTIVE_INGEST_LIMIT_RUNS' && r.error.fatal).length;
    expect(welcomed).toBe(40);
    expect(refused).toBe(20);
    expect(d.store.runs().length).toBe(40);
    await d.cleanup();
    const again = await startTestDaemon({ limits: { maxRuns: 40 } }, dir.path);
    expect(again.store.runs().length).toBe(40);
    // Attaching to a run it holds is not a new run; a 41st is still refused.
    const old = rawStream(`127.0.0.1:${again.grpcPort}`);
    old.write(hello(welcomedRun(replies), K));
    expect(await old.next()).toHaveProperty('welcome');
    const fresh = rawStream(`127.0.0.1:${again.grpcPort}`);
    fresh.write(hello('one-more', K));
    expect(((await fresh.next()) as DaemonReply).error?.code).toBe('MOTIVE_INGEST_LIMIT_RUNS');
    old.close();
    fresh.close();
    await again.cleanup();
    dir.remove();
  }, 60_000);

  it('parallel Hellos for one new run create it once and welcome them all', async () => {
    const d = await startTestDaemon({ limits: { maxRuns: 1 } });
    const streams = Array.from({ length: 20 }, () => rawStream(`127.0.0.1:${d.grpcPort}`));
    streams.forEach((s) => s.write(hello('shared', K, { worldSize: 20, rank: 0 })));
    const replies = (await Promise.all(streams.map((s) => s.next(20_000)))) as DaemonReply[];
    streams.forEach((s) => s.close());
    expect(replies.every((r) => r.welcome !== undefined)).toBe(true);
    expect(d.store.runs().map((r) => r.info.id)).toEqual(['shared']);
    await d.cleanup();
  });
});

/** The run id of the first welcomed stream (streams are numbered like their runs). */
function welcomedRun(replies: DaemonReply[]): string {
  return `par-${replies.findIndex((r) => r.welcome !== undefined)}`;
}

describe('Hellos that disagree with the run', () => {
  let d: Awaited<ReturnType<typeof startTestDaemon>>;
  beforeAll(async () => {
    d = await startTestDaemon();
    const s = rawStream(`127.0.0.1:${d.grpcPort}`);
    s.write(hello('world2', K, { rank: 0, worldSize: 2 }));
    expect(await s.next()).toHaveProperty('welcome');
    s.close();
  });
  afterAll(async () => d.cleanup());

  it.each([
    ['rank 63 of world 64 on a world-2 run', { rank: 63, worldSize: 64 }, 'MOTIVE_INGEST_WORLD_SIZE'],
    ['rank 0 of world 1 on a world-2 run', { rank: 0, worldSize: 1 }, 'MOTIVE_INGEST_WORLD_SIZE'],
    ['rank 2 of world 2', { rank: 2, worldSize: 2 }, 'MOTIVE_INGEST_HELLO_INVALID'],
  ])('refuses %s', async (_name, fields, code) => {
    const s = rawStream(`127.0.0.1:${d.grpcPort}`);
    s.write(hello('world2', K, fields));
    const reply = (await s.next()) as DaemonReply;
    s.close();
    expect(reply.error).toMatchObject({ code, fatal: true });
    expect(d.store.run('world2')?.info.worldSize).toBe(2);
  });

  it('welcomes rank 1 of world 2', async () => {
    const s = rawStream(`127.0.0.1:${d.grpcPort}`);
    s.write(hello('world2', K, { rank: 1, worldSize: 2 }));
    expect(await s.next()).toHaveProperty('welcome');
    s.write(batch(1, ['a'], Float32Array.from([1, 0, 0, 0])));
    expect(await s.next()).toEqual({ ack: { seq: 1 } });
    s.close();
  });
});
