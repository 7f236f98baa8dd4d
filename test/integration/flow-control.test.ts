/**
 * Flow control: with a slow store (injected commit delay) a trainer that writes as fast as it can
 * is slowed down by HTTP/2 flow control; the daemon's queued bytes stay bounded and every batch
 * is still committed and acknowledged.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestDaemon } from '../helpers/daemon.js';
import { batch, hello, rawStream } from '../helpers/raw-stream.js';

const K = 1024;
const N = 64;
const BATCH_BYTES = N * K * 4;
const INFLIGHT = 1024 * 1024;

describe('a slow store slows the trainer down', () => {
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  beforeAll(async () => {
    daemon = await startTestDaemon({ store: { commitDelayMs: 40 }, grpc: { streamInflightBytes: INFLIGHT } });
  });
  afterAll(async () => {
    await daemon.cleanup();
  });

  it('keeps queued bytes bounded and acknowledges everything', async () => {
    const s = rawStream(`127.0.0.1:${daemon.grpcPort}`);
    s.write(hello('slow', K));
    expect(await s.next()).toHaveProperty('welcome');
    const total = 120; // 120 × 256 KiB = 30 MiB offered at once
    const values = Float32Array.from({ length: N * K }, (_, i) => Math.cos(i));
    const ids = Array.from({ length: N }, (_, i) => `c${i}`);
    let maxQueued = 0;
    const sampler = setInterval(() => (maxQueued = Math.max(maxQueued, daemon.engine.queuedBytes)), 2);
    for (let seq = 1; seq <= total; seq++) s.write(batch(seq, ids, values));
    const acks: number[] = [];
    while (acks.length < total) {
      const m = await s.next(30_000);
      if (m === 'end') throw new Error('stream ended');
      if (m.ack) acks.push(m.ack.seq);
    }
    clearInterval(sampler);
    s.close();
    expect(acks).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(daemon.store.run('slow')!.batches).toBe(total);
    // One stream may hold INFLIGHT bytes plus the message that crossed the line.
    const perBatch = BATCH_BYTES + 64 * N;
    expect(maxQueued).toBeGreaterThan(0);
    expect(maxQueued).toBeLessThanOrEqual(INFLIGHT + perBatch);
  });
});
