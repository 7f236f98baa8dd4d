/**
 * Acceptance: a bad Hello (wrong dim, unknown dtype, fingerprint mismatch, bad token) gets an
 * Error with a stable code and nothing is stored; a batch whose byte length ≠ n·k·dtype size, or
 * with NaN/Inf, is rejected alone; the daemon keeps serving the other streams.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestDaemon } from '../helpers/daemon.js';
import { batch, hello, rawStream, type DaemonReply } from '../helpers/raw-stream.js';

const TOKEN = 'trainer-secret-1';
const VIEWER = 'viewer-secret-1';
const K = 16;

describe('bad input on the trainer stream', () => {
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  let address: string;
  const runs = async (): Promise<string[]> =>
    (
      (await (await fetch(`http://127.0.0.1:${daemon.httpPort}/v1/runs`, { headers: { authorization: `Bearer ${VIEWER}` } })).json()) as {
        runs: Array<{ id: string }>;
      }
    ).runs.map((r) => r.id);

  beforeAll(async () => {
    daemon = await startTestDaemon({
      auth: { trainerToken: TOKEN, tokens: [{ name: 'dashboards', token: VIEWER, role: 'viewer', runs: null }] },
      limits: { maxDim: 4096 },
    });
    address = `127.0.0.1:${daemon.grpcPort}`;
    // An established run whose projection later Hellos must match.
    const s = rawStream(address);
    s.write(hello('base', K, { token: TOKEN }));
    expect((await s.next()) as DaemonReply).toHaveProperty('welcome');
    s.close();
  });
  afterAll(async () => {
    await daemon.cleanup();
  });

  const refused: Array<[string, unknown, string]> = [
    ['a bad token', hello('r-token', K, { token: 'wrong-token' }), 'MOTIVE_INGEST_UNAUTHENTICATED'],
    ['no token', hello('r-notoken', K), 'MOTIVE_INGEST_UNAUTHENTICATED'],
    ['dim 0', hello('r-dim0', 0, { token: TOKEN }), 'MOTIVE_INGEST_BAD_DIM'],
    ['dim over the limit', hello('r-dimbig', 5000, { token: TOKEN }), 'MOTIVE_INGEST_BAD_DIM'],
    ['an unknown dtype', hello('r-dtype', K, { token: TOKEN, dtype: 'DTYPE_UNSPECIFIED' }), 'MOTIVE_INGEST_BAD_DTYPE'],
    ['a numeric unknown dtype', hello('r-dtype7', K, { token: TOKEN, dtype: 7 }), 'MOTIVE_INGEST_BAD_DTYPE'],
    [
      'a fingerprint mismatch',
      hello('base', K, { token: TOKEN, projection: { kind: 'gaussian', seed: 1, dim: K, fingerprint: 'other' } }),
      'MOTIVE_INGEST_PROJECTION_MISMATCH',
    ],
    [
      'a dim mismatch with the run',
      hello('base', 32, { token: TOKEN, projection: { kind: 'gaussian', seed: 1, dim: 32, fingerprint: 'fp-1' } }),
      'MOTIVE_INGEST_PROJECTION_MISMATCH',
    ],
    ['a bad run id', hello('bad run/id', K, { token: TOKEN }), 'MOTIVE_INGEST_HELLO_INVALID'],
    ['rank >= world size', hello('r-rank', K, { token: TOKEN, rank: 3, worldSize: 2 }), 'MOTIVE_INGEST_HELLO_INVALID'],
    ['a batch before Hello', batch(1, ['a'], new Float32Array(K)), 'MOTIVE_INGEST_HELLO_REQUIRED'],
  ];

  it.each(refused)('refuses %s with a fatal Error and stores nothing', async (_name, msg, code) => {
    const before = await runs();
    const s = rawStream(address);
    s.write(msg);
    const reply = await s.next();
    expect(reply).not.toBe('end');
    expect((reply as DaemonReply).error).toMatchObject({ code, fatal: true });
    expect(await s.next()).toBe('end');
    s.close();
    expect(await runs()).toEqual(before);
    const base = daemon.store.run('base')!;
    expect(base.samples.size).toBe(0);
  });

  it('rejects a malformed batch alone and keeps serving this and other streams', async () => {
    const a = rawStream(address);
    const b = rawStream(address);
    a.write(hello('bad-batches', K, { token: TOKEN, worldSize: 2 }));
    b.write(hello('bad-batches', K, { token: TOKEN, rank: 1, worldSize: 2 }));
    expect(await a.next()).toHaveProperty('welcome');
    expect(await b.next()).toHaveProperty('welcome');
    const good = Float32Array.from({ length: 2 * K }, (_, i) => Math.sin(i));
    const nan = good.slice();
    nan[5] = NaN;
    const inf = good.slice();
    inf[7] = -Infinity;
    a.write(batch(1, ['s1', 's2'], good.subarray(0, K + 3)));
    a.write(batch(2, ['s1', 's2'], nan));
    a.write(batch(3, ['s1', 's2'], inf));
    a.write(batch(4, [], new Float32Array(0)));
    a.write(batch(5, ['', 's2'], good));
    a.write(batch(6, ['s1', 's2'], good));
    b.write(batch(1, ['s3', 's4'], good));
    const got: DaemonReply[] = [];
    for (let i = 0; i < 6; i++) got.push((await a.next()) as DaemonReply);
    expect(got.slice(0, 5).map((m) => [m.error?.code, m.error?.seq, m.error?.fatal])).toEqual([
      ['MOTIVE_INGEST_BATCH_SHAPE', 1, false],
      ['MOTIVE_INGEST_BATCH_NONFINITE', 2, false],
      ['MOTIVE_INGEST_BATCH_NONFINITE', 3, false],
      ['MOTIVE_INGEST_BATCH_EMPTY', 4, false],
      ['MOTIVE_INGEST_SAMPLE_ID', 5, false],
    ]);
    expect(got[5]).toEqual({ ack: { seq: 6 } });
    expect(await b.next()).toEqual({ ack: { seq: 1 } });
    const run = daemon.store.run('bad-batches')!;
    expect(run.batches).toBe(2);
    expect([...run.samples.keys()].sort()).toEqual(['s1', 's2', 's3', 's4']);
    expect(run.samples.get('s1')!.seen).toBe(1);
    a.close();
    b.close();
  });

  it('acknowledges a resent batch without counting it again', async () => {
    const s = rawStream(address);
    s.write(hello('dups', K, { token: TOKEN }));
    expect(await s.next()).toHaveProperty('welcome');
    const v = Float32Array.from({ length: K }, (_, i) => i + 1);
    s.write(batch(1, ['x'], v));
    s.write(batch(1, ['x'], v));
    s.write(batch(2, ['x'], v));
    expect([await s.next(), await s.next(), await s.next()]).toEqual([{ ack: { seq: 1 } }, { ack: { seq: 1 } }, { ack: { seq: 2 } }]);
    expect(daemon.store.run('dups')!.samples.get('x')!.seen).toBe(2);
    s.close();
  });
});

describe('malformed protobuf bytes on the trainer stream', () => {
  it('ends only that stream, stores nothing, and keeps serving', async () => {
    const daemon = await startTestDaemon();
    try {
      const grpc = await import('@grpc/grpc-js');
      const client = new grpc.Client(`127.0.0.1:${daemon.grpcPort}`, grpc.credentials.createInsecure());
      // Bytes that are not a TrainerMessage: a field 2 (batch) whose declared length runs past the end.
      const call = client.makeBidiStreamRequest(
        '/motive.v1.Attribution/Attach',
        (b: Buffer) => b,
        (b: Buffer) => b,
      );
      const status = new Promise<{ code: number; details: string }>((resolve) => {
        call.on('status', (s: { code: number; details: string }) => resolve(s));
        call.on('error', () => undefined);
        call.on('data', () => undefined);
      });
      call.write(Buffer.from([0x12, 0xff, 0xff, 0x03, 0x01, 0x02]));
      const s = await status;
      expect(s.code).not.toBe(grpc.status.OK);
      client.close();
      expect(daemon.store.runs()).toHaveLength(0);
      const ok = rawStream(`127.0.0.1:${daemon.grpcPort}`);
      ok.write(hello('after-garbage', K));
      expect(await ok.next()).toHaveProperty('welcome');
      ok.write(batch(1, ['a'], new Float32Array(K).fill(1)));
      expect(await ok.next()).toEqual({ ack: { seq: 1 } });
      ok.close();
    } finally {
      await daemon.cleanup();
    }
  });
});
