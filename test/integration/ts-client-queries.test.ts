/**
 * The TypeScript client's query sets and defaults against a real daemon: a query set is kept for
 * resend only until a later batch's Ack confirms it (bounded), and a client on defaults shares a run
 * with a rank that says Hello as the Python client does on its defaults.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_UNCONFIRMED_QUERIES, MotiveClient } from '../../trainer-hooks/ts/client.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { hello, rawStream } from '../helpers/raw-stream.js';

describe('TypeScript client query sets and defaults', () => {
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  beforeAll(async () => {
    daemon = await startTestDaemon();
  });
  afterAll(async () => {
    await daemon.cleanup();
  });

  it('forgets a query set once a later batch is acknowledged, and keeps at most the bound', async () => {
    const c = new MotiveClient({ dtype: 'float32', address: `127.0.0.1:${daemon.grpcPort}`, runId: 'qs', dim: 2, applyWeights: false });
    await c.connect();
    for (let v = 1; v <= 3; v++) c.setQueries(v, 0, ['q'], Float32Array.from([1, v]));
    expect(c.unconfirmedQuerySets).toBe(3);
    await c.send(0, 0.1, ['a'], Float32Array.from([1, 0]));
    await c.flush();
    expect(c.unconfirmedQuerySets).toBe(0);
    expect(daemon.store.run('qs')!.latestQuerySet()?.version).toBe(3);
    // Without batches after them nothing confirms them; only the newest are kept.
    for (let v = 4; v < 4 + MAX_UNCONFIRMED_QUERIES + 44; v++) c.setQueries(v, 1, ['q'], Float32Array.from([1, v]));
    expect(c.unconfirmedQuerySets).toBe(MAX_UNCONFIRMED_QUERIES);
    await c.send(1, 0.1, ['b'], Float32Array.from([0, 1]));
    await c.flush();
    expect(c.unconfirmedQuerySets).toBe(0);
    expect(daemon.store.run('qs')!.latestQuerySet()?.version).toBe(3 + MAX_UNCONFIRMED_QUERIES + 44);
    c.close();
  });

  it("attaches on defaults to a run a Python client created on its defaults (kind 'logra-gaussian', seed 0, no fingerprint)", async () => {
    const py = rawStream(`127.0.0.1:${daemon.grpcPort}`);
    py.write(
      hello('mixed', 4, { worldSize: 2, dtype: 'FLOAT16', projection: { kind: 'logra-gaussian', seed: 0, dim: 4, fingerprint: '' } }),
    );
    const welcome = await py.next();
    expect(welcome !== 'end' && welcome.welcome !== undefined && welcome.welcome !== null).toBe(true);
    const c = new MotiveClient({
      address: `127.0.0.1:${daemon.grpcPort}`,
      runId: 'mixed',
      dim: 4,
      rank: 1,
      worldSize: 2,
      applyWeights: false,
    });
    await c.connect();
    await c.send(0, 0.1, ['a'], Float32Array.from([1, 0, 0, 0]));
    await c.flush();
    expect(daemon.store.run('mixed')!.samples.get('a')?.seen).toBe(1);
    c.close();
    py.close();
  });
});
