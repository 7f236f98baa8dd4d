/**
 * When a drain's grace runs out the daemon stops the engine taking work (`refuseQueued`): the
 * batches still queued are rejected (never acknowledged, so trainers resend them), the groups
 * already taken commit, and the store holds exactly a prefix of the stream. Real LMDB in a temp
 * dir, the real engine, each batch its own slow commit.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { SubmitOutcome } from '../../daemon/influence/index.js';
import { MotiveError, isMotiveError } from '../../daemon/shared/index.js';
import { rng } from '../helpers/reference.js';
import { openStoreRun } from '../helpers/store-run.js';

const K = 8;
const BATCHES = 24;
const dirs: Array<{ remove: () => void }> = [];
afterAll(() => dirs.forEach((d) => d.remove()));

describe('engine refuseQueued', () => {
  it('rejects what is queued and what comes later; the groups already taken commit, a prefix of the stream', async () => {
    // maxGroupBytes below one batch: every batch is its own 40 ms commit.
    const { store, run, engine } = await openStoreRun('motive-refuse-', dirs, K, 'dot', { commitDelayMs: 40 }, { maxGroupBytes: 1 });
    try {
      const r = rng(5);
      const submit = (seq: number): Promise<SubmitOutcome> => {
        const ids = [`s-${seq}`, 'shared'];
        const sketches = Float32Array.from({ length: ids.length * K }, () => r.normal());
        const wire = new Uint8Array(sketches.buffer.slice(0));
        return engine.submitBatch({
          runId: 'r',
          rank: 0,
          seq,
          step: seq,
          lr: 0.01,
          sampleIds: ids,
          sketches,
          wire,
          wireDtype: 'float32' as const,
          bytes: wire.byteLength,
        });
      };
      const refusal = new MotiveError('MOTIVE_INGEST_SHUTTING_DOWN');
      const outcomes: Array<Promise<unknown>> = [];
      for (let seq = 1; seq <= BATCHES; seq++) outcomes.push(submit(seq).catch((e: unknown) => e));
      // The grace runs out once the first batch is in.
      await outcomes[0];
      engine.refuseQueued(refusal);
      const late = await submit(BATCHES + 1).catch((e: unknown) => e);
      await engine.drained();
      const settled = await Promise.all(outcomes);

      const committed = settled.filter((o) => o === 'committed').length;
      // A prefix committed: the first batch, and the groups in flight or being prepared at the refusal.
      expect(settled.slice(0, committed).every((o) => o === 'committed')).toBe(true);
      expect(committed).toBeGreaterThanOrEqual(1);
      expect(committed).toBeLessThanOrEqual(4);
      // The rest (most of the queue) rejected with the refusal, as is a later submission.
      expect(settled.slice(committed)).toHaveLength(BATCHES - committed);
      for (const o of settled.slice(committed)) expect(o).toBe(refusal);
      expect(isMotiveError(late) && late.code).toBe('MOTIVE_INGEST_SHUTTING_DOWN');
      // The store and memory hold exactly that prefix, counted once.
      expect(run.commits.get(0)).toBe(committed);
      expect(run.batches).toBe(committed);
      expect(run.samples.get('shared')?.seen).toBe(committed);
      expect(engine.queueDepth).toBe(0);
      expect(engine.queuedBytes).toBe(0);
    } finally {
      await store.close();
    }
  }, 30_000);
});
