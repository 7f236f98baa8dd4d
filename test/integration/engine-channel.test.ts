/**
 * The engine publishes its group commits on `node:diagnostics_channel` (daemon/influence/channels.ts)
 * and the metrics hear them there, with no listener wired between the two. Two engines over two real
 * stores share the process, as daemons do in tests: each message names its engine, and each
 * engine's metrics count only its own batches. The expected counts are what the test submitted.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { afterAll, describe, expect, it } from 'vitest';
import { ENGINE_COMMIT_CHANNEL, type EngineCommitMessage, type InfluenceEngine } from '../../daemon/influence/index.js';
import { MotiveMetrics } from '../../daemon/metrics/index.js';
import { rng } from '../helpers/reference.js';
import { openStoreRun } from '../helpers/store-run.js';

const K = 8;
const dirs: Array<{ remove: () => void }> = [];
afterAll(() => dirs.forEach((d) => d.remove()));

/** Submits `batches` batches of `rows` samples each to run `r` from `rank`, one after another, and waits for all. */
async function submit(engine: InfluenceEngine, batches: number, rows: number, seed: number, rank = 0): Promise<void> {
  const r = rng(seed);
  const done: Array<Promise<unknown>> = [];
  for (let seq = 1; seq <= batches; seq++) {
    const ids = Array.from({ length: rows }, (_, i) => `s-${(seq * rows + i) % 11}`);
    const sketches = Float32Array.from({ length: rows * K }, () => r.normal());
    const wire = new Uint8Array(sketches.buffer.slice(0));
    done.push(
      engine.submitBatch({
        runId: 'r',
        rank,
        seq,
        step: seq,
        lr: 0.01,
        sampleIds: ids,
        sketches,
        wire,
        wireDtype: 'float32',
        bytes: wire.byteLength,
      }),
    );
  }
  await Promise.all(done);
  await engine.drained();
}

/** The value of a series labelled only with `run` in a Prometheus text exposition. */
function series(text: string, name: string, run: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{run="${run}"}`));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

describe('engine commit channel', () => {
  it('publishes every group commit with its engine; metrics subscribe and count their own engine only', async () => {
    const a = await openStoreRun('motive-channel-a-', dirs, K, 'dot');
    const b = await openStoreRun('motive-channel-b-', dirs, K, 'dot');
    const heard: EngineCommitMessage[] = [];
    const onMessage = (m: unknown): void => {
      heard.push(m as EngineCommitMessage);
    };
    diagnosticsChannel.subscribe(ENGINE_COMMIT_CHANNEL, onMessage);
    const metricsA = new MotiveMetrics({ store: a.store, engine: a.engine, attachedCounts: () => new Map() }, { processMetrics: false });
    const metricsB = new MotiveMetrics({ store: b.store, engine: b.engine, attachedCounts: () => new Map() }, { processMetrics: false });
    try {
      await submit(a.engine, 7, 3, 1);
      await submit(b.engine, 4, 5, 2);

      // Every batch is in exactly one published event, from its own engine.
      const fromA = heard.filter((m) => m.engine === a.engine).map((m) => m.event);
      const fromB = heard.filter((m) => m.engine === b.engine).map((m) => m.event);
      expect(fromA.length + fromB.length).toBe(heard.length);
      expect(fromA.reduce((n, e) => n + e.batches, 0)).toBe(7);
      expect(fromA.reduce((n, e) => n + e.sketches, 0)).toBe(7 * 3);
      expect(fromB.reduce((n, e) => n + e.batches, 0)).toBe(4);
      expect(fromB.reduce((n, e) => n + e.sketches, 0)).toBe(4 * 5);
      expect(fromA.flatMap((e) => e.sampleIds).map((ids) => ids.length)).toEqual(Array<number>(7).fill(3));

      // The metrics counted what their engine published, and nothing of the other's.
      const textA = await metricsA.render();
      const textB = await metricsB.render();
      expect(series(textA, 'motive_batches_committed_total', 'r')).toBe(7);
      expect(series(textB, 'motive_batches_committed_total', 'r')).toBe(4);
      expect(series(textA, 'motive_commit_duration_seconds_count', 'r')).toBe(fromA.length);
      expect(series(textB, 'motive_commit_duration_seconds_count', 'r')).toBe(fromB.length);

      // Closed metrics hear no more.
      metricsA.close();
      const before = heard.length;
      await submit(a.engine, 2, 1, 3, 1);
      expect(heard.length).toBeGreaterThan(before);
      expect(series(await metricsA.render(), 'motive_batches_committed_total', 'r')).toBe(7);
    } finally {
      diagnosticsChannel.unsubscribe(ENGINE_COMMIT_CHANNEL, onMessage);
      metricsA.close();
      metricsB.close();
      await a.store.close();
      await b.store.close();
    }
  }, 30_000);
});
