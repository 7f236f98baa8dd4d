/**
 * Motion descriptors beside the score: once a clip is profiled, the sample views and the live
 * feed's top lists (which the page and the run dashboard show) carry its descriptors.
 */
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MotiveClient } from '../../trainer-hooks/ts/index.js';
import { startTestDaemon } from '../helpers/daemon.js';

const PROFILE = {
  id: 'bad-1',
  hash: 'a'.repeat(64),
  path: '/clips/bad-1.mp4',
  profiledAtMs: 1_700_000_000_000,
  dynamic: true,
  dynamicDegree: 0.75,
  flowMean: 1.5,
  flowTop5: 4.25,
  jitter: 0.625,
  reversals: 0.375,
  staticFraction: 0.125,
  sceneCuts: 0,
  frames: 16,
};

describe('motion descriptors in the views', () => {
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  let base: string;
  beforeAll(async () => {
    daemon = await startTestDaemon();
    base = `http://127.0.0.1:${daemon.httpPort}`;
    const c = new MotiveClient({ dtype: 'float32', address: `127.0.0.1:${daemon.grpcPort}`, runId: 'mv', dim: 2 });
    await c.connect();
    c.setQueries(1, 0, ['q'], Float32Array.from([1, 0]));
    await c.send(0, 0.1, ['bad-1', 'good-1'], Float32Array.from([-1, 0, 1, 0]));
    await c.flush();
    c.close();
    const res = await fetch(`${base}/v1/profiles`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ profiles: [PROFILE] }),
    });
    expect(res.status).toBe(200);
  });
  afterAll(async () => {
    await daemon.cleanup();
  });

  it('REST sample views carry the descriptors (null when not profiled)', async () => {
    const { samples } = (await (await fetch(`${base}/v1/runs/mv/samples?order=harmful`)).json()) as {
      samples: Array<{ id: string; motion: Record<string, unknown> | null }>;
    };
    expect(samples.map((s) => s.id)).toEqual(['bad-1', 'good-1']);
    expect(samples[0]!.motion).toMatchObject({ jitter: 0.625, staticFraction: 0.125, dynamicDegree: 0.75, hash: 'a'.repeat(64) });
    expect(samples[1]!.motion).toBeNull();
  });

  it('the live top lists carry them too', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${daemon.httpPort}/v1/runs/mv/live?types=top`);
    const top = await new Promise<{ harmful: Array<{ id: string; motion: Record<string, unknown> | null }> }>((resolve, reject) => {
      ws.on('message', (data: Buffer) => {
        const e = JSON.parse(data.toString()) as { type: string };
        if (e.type === 'top') resolve(e as never);
      });
      ws.on('error', reject);
    });
    ws.close();
    expect(top.harmful[0]).toMatchObject({ id: 'bad-1', motion: { jitter: 0.625, staticFraction: 0.125, dynamicDegree: 0.75 } });
    expect(top.harmful[1]).toMatchObject({ id: 'good-1', motion: null });
  });
});
