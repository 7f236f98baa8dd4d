/**
 * Hostile peers that stop reading: trainer streams that ask for weights and never read them,
 * against a daemon pushing weights every 20 ms. What the daemon holds for them stays bounded (the
 * messages queued per stream, counted; its RSS, printed), a trainer that resumes reading ends
 * with the run's weights, and a stream stalled past `grpc.maxStalledMs` is reset
 * (docs/reliability.md).
 */
import { connect, constants as h2, type ClientHttp2Stream } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAttributionService } from '../../daemon/ingest/index.js';
import { MAX_QUEUED_MESSAGES } from '../../daemon/ingest/trainer-stream.js';
import { MotiveClient } from '../../trainer-hooks/ts/index.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { hello, type DaemonReply } from '../helpers/raw-stream.js';
import { rng } from '../helpers/reference.js';

const K = 16;
const POOL = 20_000;
const RUN = 'stalled';
const STALLED = 3;
const MAX_STALLED_MS = 6000;

const rssMiB = (): number => process.memoryUsage().rss / 2 ** 20;

interface WeightsReader {
  stream: ClientHttp2Stream;
  weights: Map<string, number>;
  version: number;
  messages: number;
  bytes: number;
  /** The RST_STREAM code the daemon closed the stream with (0: none). */
  closed: Promise<number>;
  close(): void;
}

/**
 * An Attach stream with apply_weights, spoken over plain HTTP/2 so that a stream that does not
 * read also grants no flow-control window (grpc-js clients keep reading into their own memory).
 * What it reads it applies as the clients do: a full update replaces the weights.
 */
function weightsReader(address: string, read: boolean): WeightsReader {
  const { service } = loadAttributionService();
  const method = service.Attach!;
  const session = connect(`http://${address}`);
  session.on('error', () => undefined);
  const stream = session.request({
    ':method': 'POST',
    ':path': method.path,
    'content-type': 'application/grpc',
    te: 'trailers',
  });
  stream.on('error', () => undefined);
  const r: WeightsReader = {
    stream,
    weights: new Map(),
    version: 0,
    messages: 0,
    bytes: 0,
    closed: new Promise((resolve) => stream.on('close', () => resolve(stream.rstCode ?? 0))),
    close: () => session.destroy(),
  };
  if (read) {
    let buf = Buffer.alloc(0);
    stream.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
        const len = buf.readUInt32BE(1);
        const m = method.responseDeserialize(buf.subarray(5, 5 + len)) as DaemonReply;
        buf = buf.subarray(5 + len);
        r.messages++;
        r.bytes += len;
        const u = m.weights;
        if (u === undefined || u === null) continue;
        if (u.full) r.weights.clear();
        u.sampleIds.forEach((id, i) => r.weights.set(id, u.weights[i] as number));
        r.version = u.version;
      }
    });
  }
  const body = method.requestSerialize(
    hello(RUN, K, { applyWeights: true, projection: { kind: 'logra-gaussian', seed: 0, dim: K, fingerprint: '' } }),
  );
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  body.copy(frame, 5);
  stream.write(frame);
  return r;
}

describe('trainer streams that do not read their weights', () => {
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  let writer: MotiveClient;
  const ids = Array.from({ length: POOL }, (_, i) => `datasets/motion-clips/shard-${i % 97}/clip-${String(i).padStart(6, '0')}.mp4`);
  const r = rng(11);
  let step = 0;

  const sendBatches = async (count: number): Promise<void> => {
    for (let b = 0; b < count; b++) {
      const batch = Array.from({ length: 512 }, () => ids[r.int(POOL)] as string);
      const sk = Float32Array.from({ length: batch.length * K }, () => r.normal());
      await writer.send(step++, 1e-3, batch, sk);
    }
    await writer.flush();
  };

  beforeAll(async () => {
    daemon = await startTestDaemon({
      grpc: { maxStalledMs: MAX_STALLED_MS },
      weights: { intervalMs: 20, minDelta: 0, minSeen: 1, maxRecomputeShare: 1 },
    });
    writer = new MotiveClient({ dtype: 'float32', address: `127.0.0.1:${daemon.grpcPort}`, runId: RUN, dim: K, applyWeights: false });
    await writer.connect();
    writer.setQueries(
      1,
      0,
      ['q0', 'q1'],
      Float32Array.from({ length: 2 * K }, () => r.normal()),
    );
    // Every clip seen once, so each recompute moves thousands of weights.
    for (let at = 0; at < POOL; at += 1000) {
      await writer.send(
        step++,
        1e-3,
        ids.slice(at, at + 1000),
        Float32Array.from({ length: 1000 * K }, () => r.normal()),
      );
    }
    await writer.flush();
  }, 120_000);

  afterAll(async () => {
    writer.close();
    await daemon.cleanup();
  });

  it('holds a few queued messages and one merged update per stalled stream, merges for a reader that resumes, and resets streams stalled too long', async () => {
    const address = `127.0.0.1:${daemon.grpcPort}`;
    const before = rssMiB();
    const v0 = daemon.store.run(RUN)!.weightsVersion;
    const stalled = Array.from({ length: STALLED }, () => weightsReader(address, false));
    const resumer = weightsReader(address, true);
    // The reference: a reader that never pauses gets every update as it is pushed.
    const control = weightsReader(address, true);
    const started = Date.now();
    let peak = before;
    let maxQueued = 0;
    let maxPending = 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssMiB());
      for (const b of daemon.ingest.backlog()) {
        maxQueued = Math.max(maxQueued, b.queuedMessages);
        maxPending = Math.max(maxPending, b.pendingWeights);
      }
    }, 50);
    // The resumer reads for a second, then stops for 3 s (under maxStalledMs) while the weights keep moving.
    let pausedMessages = 0;
    const pauseTimer = setTimeout(() => {
      resumer.stream.pause();
      pausedMessages = resumer.messages;
    }, 1000);
    const resumeTimer = setTimeout(() => resumer.stream.resume(), 4000);
    // Ingest keeps every weight moving while the stalled streams stay under maxStalledMs.
    while (Date.now() - started < MAX_STALLED_MS - 1000) await sendBatches(4);
    const stalledPeak = peak;
    const stalledVersions = daemon.store.run(RUN)!.weightsVersion - v0;
    const queuedWhileStalled = maxQueued;
    clearTimeout(pauseTimer);
    clearTimeout(resumeTimer);
    resumer.stream.resume();
    // Past maxStalledMs with pushes still coming: the stalled streams are reset.
    let reset = 0;
    for (const s of stalled) void s.closed.then(() => reset++);
    while (reset < STALLED && Date.now() - started < 4 * MAX_STALLED_MS) await sendBatches(2);
    clearInterval(sampler);
    const metrics = await (await fetch(`http://127.0.0.1:${daemon.httpPort}/metrics`)).text();
    const resets = Number(/motive_ingest_rejected_total\{code="MOTIVE_INGEST_STALLED"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    console.log(
      `stalled weight readers: ${STALLED} streams for ${((MAX_STALLED_MS - 1000) / 1000).toFixed(1)} s, ${stalledVersions} weights versions pushed; ` +
        `at most ${queuedWhileStalled} message(s) queued and ${maxPending} merged weights per stream; ` +
        `process RSS ${before.toFixed(0)} MiB before, peak ${stalledPeak.toFixed(0)} MiB while stalled (+${(stalledPeak - before).toFixed(0)} MiB); ` +
        `${resets} resets after ${Date.now() - started} ms; the resumer read ${pausedMessages} messages before its pause, ` +
        `${resumer.messages} in all (${(resumer.bytes / 2 ** 20).toFixed(1)} MiB)`,
    );
    expect(stalledVersions).toBeGreaterThan(20);
    // A few messages queued for HTTP/2 at most; everything newer is merged.
    expect(queuedWhileStalled).toBeLessThanOrEqual(MAX_QUEUED_MESSAGES);
    expect(maxPending).toBeLessThanOrEqual(POOL);
    expect(control.messages).toBeGreaterThanOrEqual(resumer.messages);
    expect(resets).toBe(STALLED);
    for (const s of stalled) expect(await s.closed).toBe(h2.NGHTTP2_ENHANCE_YOUR_CALM);

    // Once the weights settle, the resumer (merged updates, then a full snapshot) holds exactly the
    // run's stored weights at the run's weights version. The stored weights are the reference: a
    // reader applying every delta in order can differ from them where a recompute's update, computed
    // before a batch's, went out after it (docs/method.md), which the next snapshot mends.
    await daemon.weighting.flushAll();
    const run = daemon.store.run(RUN)!;
    const settled = () => resumer.version === run.weightsVersion && control.version === run.weightsVersion;
    for (let i = 0; i < 100 && !settled(); i++) await new Promise((res) => setTimeout(res, 100));
    await new Promise((res) => setTimeout(res, 300));
    expect(resumer.version).toBe(run.weightsVersion);
    expect(control.version).toBe(run.weightsVersion);
    const stored = (await (await fetch(`http://127.0.0.1:${daemon.httpPort}/v1/runs/${RUN}/weights`)).json()) as {
      version: number;
      weights: Record<string, number>;
    };
    expect(stored.version).toBe(run.weightsVersion);
    const expected = new Map(Object.entries(stored.weights).filter(([, w]) => w !== 1));
    const got = new Map([...resumer.weights].filter(([, w]) => w !== 1));
    expect(expected.size).toBeGreaterThan(1000);
    expect(got.size).toBe(expected.size);
    for (const [id, w] of expected) expect(got.get(id), id).toBe(w);
    for (const s of [...stalled, resumer, control]) s.close();
  }, 120_000);
});
