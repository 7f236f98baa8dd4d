/**
 * The `motive:*` diagnostics channels (docs/observability.md, "Channels") on a real daemon with a
 * trainer streaming over gRPC: every channel is subscribed to by name, as an outside tool would,
 * and its payloads are checked against what the trainer sent (steps × batch size × k × 2 bytes of
 * fp16) and what the store holds at the end. A second daemon in the same process publishes on the
 * same channels, and its messages name it, not the first.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { streamSyntheticRun } from '../../daemon/cli/synthetic-run.js';
import type { CommitEvent } from '../../daemon/influence/index.js';
import type { IngestBatchAccepted, IngestBatchAcked } from '../../daemon/shared/index.js';
import type { RecomputeStretch, WeightUpdateEvent } from '../../daemon/weighting/index.js';
import { startTestDaemon } from '../helpers/daemon.js';

const NAMES = [
  'motive:ingest:batch-accepted',
  'motive:ingest:batch-acked',
  'motive:engine:commit',
  'motive:weighting:pushed',
  'motive:weighting:update',
  'motive:weighting:recompute',
] as const;

/** The payload types docs/observability.md gives each channel. */
interface Payloads {
  'motive:ingest:batch-accepted': IngestBatchAccepted;
  'motive:ingest:batch-acked': IngestBatchAcked;
  'motive:engine:commit': CommitEvent;
  'motive:weighting:pushed': WeightUpdateEvent;
  'motive:weighting:update': WeightUpdateEvent;
  'motive:weighting:recompute': RecomputeStretch;
}
type Name = (typeof NAMES)[number];
type Heard = Record<Name, Array<{ from: unknown; event: unknown }>>;

const STEPS = 60;
const BATCH = 16;
const DIM = 32;

describe('diagnostics channels', () => {
  let a: Awaited<ReturnType<typeof startTestDaemon>>;
  let b: Awaited<ReturnType<typeof startTestDaemon>>;
  const heard = Object.fromEntries(NAMES.map((n) => [n, []])) as unknown as Heard;
  const handlers = new Map<string, (m: unknown) => void>();

  beforeAll(async () => {
    a = await startTestDaemon({ weights: { minSeen: 2, intervalMs: 50, signal: 'attribution' } });
    b = await startTestDaemon({ weights: { minSeen: 2, intervalMs: 50, signal: 'attribution' } });
    for (const name of NAMES) {
      const h = (m: unknown): void => {
        const msg = m as { source?: unknown; engine?: unknown; event: unknown };
        heard[name].push({ from: msg.source ?? msg.engine, event: msg.event });
      };
      handlers.set(name, h);
      diagnosticsChannel.subscribe(name, h);
    }
  });

  afterAll(async () => {
    for (const [name, h] of handlers) diagnosticsChannel.unsubscribe(name, h);
    await a.cleanup();
    await b.cleanup();
  });

  it('publish ingest, engine and weighting events with payloads that match what was sent and stored', async () => {
    await streamSyntheticRun({ address: `127.0.0.1:${a.grpcPort}`, runId: 'ch-a', steps: STEPS, batchSize: BATCH, dim: DIM, clips: 80 });
    await streamSyntheticRun({ address: `127.0.0.1:${b.grpcPort}`, runId: 'ch-b', steps: 5, batchSize: BATCH, dim: DIM, clips: 80 });
    await a.engine.drained();
    await a.weighting.flushAll();
    await b.weighting.flushAll();
    const mine = <N extends Name>(name: N, source: unknown): Array<Payloads[N]> =>
      heard[name].filter((h) => h.from === source).map((h) => h.event as Payloads[N]);

    // Ingest: one accepted and one acked event per batch the trainer sent, seq 1..STEPS.
    const accepted = mine('motive:ingest:batch-accepted', a.ingest);
    expect(accepted.map((e) => e.seq)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
    for (const e of accepted) expect(e).toEqual({ runId: 'ch-a', rank: 0, seq: e.seq, samples: BATCH, bytes: BATCH * DIM * 2 });
    const acked = mine('motive:ingest:batch-acked', a.ingest);
    expect(acked.map((e) => e.seq).sort((x, y) => x - y)).toEqual(accepted.map((e) => e.seq));
    for (const e of acked) {
      expect(e.runId).toBe('ch-a');
      expect(e.receivedAt).toBeGreaterThan(0);
      expect(e.submittedAt).toBeGreaterThanOrEqual(e.receivedAt);
      expect(e.ackedAt).toBeGreaterThanOrEqual(e.submittedAt);
    }
    // The other daemon's batches name the other server.
    expect(mine('motive:ingest:batch-accepted', b.ingest).map((e) => e.runId)).toEqual(Array(5).fill('ch-b'));

    // Engine: the commits add up to what was sent, and to what the store holds.
    const run = a.store.run('ch-a')!;
    const commits = mine('motive:engine:commit', a.engine).filter((e) => e.runId === 'ch-a');
    expect(commits.reduce((n, e) => n + e.batches, 0)).toBe(STEPS);
    expect(commits.reduce((n, e) => n + e.sketches, 0)).toBe(STEPS * BATCH);
    expect(run.sketches).toBe(STEPS * BATCH);

    // Weighting: updates in version order; the last weight each names is the sample's weight now.
    const updates = mine('motive:weighting:update', a.weighting).filter((e) => e.runId === 'ch-a');
    expect(updates.length).toBeGreaterThan(0);
    const versions = updates.map((e) => e.version);
    expect(versions).toEqual([...versions].sort((x, y) => x - y));
    expect(Math.max(...versions)).toBe(run.weightsVersion);
    const last = new Map<string, number>();
    for (const e of updates) e.sampleIds.forEach((id, i) => last.set(id, e.weights[i]!));
    for (const [id, w] of last) expect(run.samples.get(id)!.weight).toBe(w);
    expect([...last.values()].some((w) => w < 1)).toBe(true);
    // Every announced version was pushed to the trainers first.
    const pushed = new Set(mine('motive:weighting:pushed', a.weighting).map((e) => e.version));
    for (const v of versions) expect(pushed.has(v)).toBe(true);
    // Recomputes ran on the main thread in stretches, each ending after it began.
    const stretches = mine('motive:weighting:recompute', a.weighting).filter((e) => e.runId === 'ch-a');
    expect(stretches.length).toBeGreaterThan(0);
    for (const s of stretches) expect(s.end).toBeGreaterThanOrEqual(s.start);
    expect(mine('motive:weighting:update', b.weighting).every((e) => e.runId === 'ch-b')).toBe(true);
  });

  it('feed the metrics: accepted batches and Ack latencies are counted from the channel', async () => {
    const text = await (await fetch(`http://127.0.0.1:${a.httpPort}/metrics`)).text();
    const value = (name: string): number =>
      Number(
        text
          .split('\n')
          .find((l) => l.startsWith(`${name}{run="ch-a"}`))!
          .split(' ')
          .pop(),
      );
    expect(value('motive_batches_ingested_total')).toBe(STEPS);
    expect(value('motive_sketches_ingested_total')).toBe(STEPS * BATCH);
    expect(value('motive_ingest_bytes_total')).toBe(STEPS * BATCH * DIM * 2);
    expect(value('motive_ack_latency_seconds_count')).toBe(STEPS);
    const updates = heard['motive:weighting:update'].filter(
      (h) => h.from === a.weighting && (h.event as WeightUpdateEvent).runId === 'ch-a',
    );
    expect(updates.length).toBeGreaterThan(0);
    expect(value('motive_weight_updates_total')).toBe(updates.length);
  });
});
