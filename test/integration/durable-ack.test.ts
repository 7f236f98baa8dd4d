/**
 * Acks leave once a batch is durable, before its group is applied to memory (engine.ts
 * `submitBatch`'s `durable`): the apply follows on the next turn of the event loop, in commit
 * order, and nothing read after an Ack can miss the batch. Real LMDB in temp dirs, the real
 * engine, gRPC on 127.0.0.1 and the REST API.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { SubmitOutcome } from '../../daemon/influence/index.js';
import { createLogger } from '../../daemon/shared/index.js';
import { WeightingService } from '../../daemon/weighting/index.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { batch, hello, rawStream } from '../helpers/raw-stream.js';
import { rng } from '../helpers/reference.js';
import { openStoreRun } from '../helpers/store-run.js';
import { Store } from '../../daemon/store/index.js';

const K = 8;
const dirs: Array<{ remove: () => void }> = [];
afterAll(() => dirs.forEach((d) => d.remove()));

describe('durable Acks', () => {
  it('hears a batch durable before its apply, and applies the groups in commit order', async () => {
    const { store, run, engine } = await openStoreRun('motive-durable-ack-', dirs, K, 'dot');
    try {
      const order: string[] = [];
      engine.onCommit((e) => order.push(...e.sampleIds.map((ids) => ids[0] as string)));
      const r = rng(11);
      const heard: Array<{ seq: number; applied: number | undefined; turnEnd?: number; outcome: SubmitOutcome }> = [];
      const resolved: number[] = [];
      const submissions: Array<Promise<unknown>> = [];
      // Twelve batches without waiting, so that groups commit while others wait; every other one
      // without a `durable` callback (an in-process caller), its group applied in the same order.
      for (let seq = 1; seq <= 12; seq++) {
        const ids = [`own-${seq}`, 'shared'];
        const sketches = Float32Array.from({ length: ids.length * K }, () => r.normal());
        const wire = new Uint8Array(sketches.buffer.slice(0));
        const sub = {
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
        };
        const durable =
          seq % 2 === 1
            ? (outcome: SubmitOutcome): void => {
                const h: (typeof heard)[number] = { seq, applied: run.samples.get(`own-${seq}`)?.seen, outcome };
                heard.push(h);
                // Still not applied once this turn's microtasks have run (where an Ack is written).
                queueMicrotask(() => queueMicrotask(() => (h.turnEnd = run.samples.get(`own-${seq}`)?.seen ?? 0)));
              }
            : undefined;
        submissions.push(engine.submitBatch(sub, durable).then(() => resolved.push(seq)));
      }
      // A resend of batch 3 once it is in: durable again (a duplicate), counted once.
      await submissions[2];
      const resend = Float32Array.from({ length: 2 * K }, () => 1);
      let duplicate: SubmitOutcome | undefined;
      const wire = new Uint8Array(resend.buffer.slice(0));
      const dup = {
        runId: 'r',
        rank: 0,
        seq: 3,
        step: 3,
        lr: 0.01,
        sampleIds: ['own-3', 'shared'],
        sketches: resend,
        wire,
        wireDtype: 'float32' as const,
        bytes: wire.byteLength,
      };
      submissions.push(engine.submitBatch(dup, (o) => (duplicate = o)));
      await Promise.all(submissions);

      // Each durable callback ran before its own batch touched memory.
      expect(heard.map((h) => h.seq)).toEqual([1, 3, 5, 7, 9, 11]);
      for (const h of heard) {
        expect(h.applied).toBeUndefined();
        expect(h.turnEnd).toBe(0);
        expect(h.outcome).toBe('committed');
      }
      expect(duplicate).toBe('duplicate');
      // Applied in commit order, each batch once, and every submission resolved after its apply.
      expect(order).toEqual(Array.from({ length: 12 }, (_, i) => `own-${i + 1}`));
      expect(resolved.slice(0, 12).sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
      expect(run.samples.get('shared')?.seen).toBe(12);
      expect(run.commits.get(0)).toBe(12);
      expect(run.batches).toBe(12);
    } finally {
      await store.close();
    }
  });

  it("sends a batch's weights to the trainers with its Ack, before the apply; the feed hears of them applied", async () => {
    const { store, run, engine } = await openStoreRun('motive-durable-weights-', dirs, K, 'dot');
    const weighting = new WeightingService(
      store,
      { policy: 'downweight', minSeen: 1, beta: 1, wMin: 0.05, quarantineZ: -4, minDelta: 0.01, intervalMs: 60_000, batchUpdates: true },
      createLogger('warn'),
    );
    engine.setWeigher(weighting);
    try {
      const r = rng(23);
      const queries = Float32Array.from({ length: 2 * K }, () => r.normal());
      await engine.submitQueries({
        runId: 'r',
        version: 1,
        step: 0,
        ids: ['q0', 'q1'],
        groups: [],
        sketches: queries,
        bytes: queries.byteLength,
      });
      // A first batch and a recompute over it: the statistics batch weights are taken from.
      const batchOf = (seq: number, ids: string[], sign: (i: number) => number) => {
        const sketches = new Float32Array(ids.length * K);
        for (let i = 0; i < ids.length; i++)
          for (let d = 0; d < K; d++)
            sketches[i * K + d] = r.normal() * 0.1 + sign(i) * ((queries[d] as number) + (queries[K + d] as number));
        const wire = new Uint8Array(sketches.buffer.slice(0));
        return {
          runId: 'r',
          rank: 0,
          seq,
          step: seq,
          lr: 1,
          sampleIds: ids,
          sketches,
          wire,
          wireDtype: 'float32' as const,
          bytes: wire.byteLength,
        };
      };
      await engine.submitBatch(
        batchOf(
          1,
          Array.from({ length: 40 }, (_, i) => `base-${i}`),
          (i) => (i % 5) * 0.2,
        ),
      );
      await weighting.recompute('r');
      // Then a batch of clips that oppose the queries: their weights move with the batch.
      const events: string[] = [];
      weighting.onTrainerUpdate((e) =>
        events.push(`trainers v${e.version} applied=${run.samples.get(e.sampleIds[0] as string)?.seen ?? 0}`),
      );
      weighting.onUpdate((e) => events.push(`feed v${e.version} applied=${run.samples.get(e.sampleIds[0] as string)?.seen ?? 0}`));
      const bad = Array.from({ length: 8 }, (_, i) => `bad-${i}`);
      await engine.submitBatch(
        batchOf(2, bad, () => -3),
        () => events.push('ack'),
      );
      // The feed's announcement is queued behind the submission's resolution.
      await new Promise((resolve) => setImmediate(resolve));
      const version = run.weightsVersion;
      expect(version).toBeGreaterThan(1);
      expect(bad.every((id) => (run.samples.get(id)?.weight ?? 1) < 1)).toBe(true);
      expect(events).toEqual(['ack', `trainers v${version} applied=0`, `feed v${version} applied=1`]);
      // In process (no Ack waiting), one announcement to both, applied.
      events.length = 0;
      await engine.submitBatch(
        batchOf(
          3,
          bad.map((id) => `worse-${id}`),
          () => -3,
        ),
      );
      await new Promise((resolve) => setImmediate(resolve));
      expect(run.weightsVersion).toBe(version + 1);
      expect(events).toEqual([`trainers v${version + 1} applied=1`, `feed v${version + 1} applied=1`]);
    } finally {
      weighting.close();
      await store.close();
    }
  });

  it('a REST read made on receiving an Ack sees that batch', async () => {
    const daemon = await startTestDaemon({});
    const s = rawStream(`127.0.0.1:${daemon.grpcPort}`);
    try {
      s.write(hello('acked', K));
      expect(await s.next(10_000)).toHaveProperty('welcome');
      const r = rng(5);
      for (let seq = 1; seq <= 20; seq++) {
        s.write(
          batch(
            seq,
            [`clip-${seq}`, 'shared'],
            Float32Array.from({ length: 2 * K }, () => r.normal()),
            seq,
          ),
        );
        const reply = await s.next(10_000);
        if (reply === 'end') throw new Error('stream ended');
        expect(reply.ack?.seq).toBe(seq);
        const res = await fetch(`http://127.0.0.1:${daemon.httpPort}/v1/runs/acked/samples/shared`);
        expect(res.status).toBe(200);
        expect(((await res.json()) as { seen: number }).seen).toBe(seq);
        const own = await fetch(`http://127.0.0.1:${daemon.httpPort}/v1/runs/acked/samples/clip-${seq}`);
        expect(own.status).toBe(200);
      }
    } finally {
      s.close();
      await daemon.cleanup();
    }
  });

  it("applies a weight recompute committed between a group's commit and its apply after that group", async () => {
    // Synchronous commits without a delay: a recompute's commit can start, end and be applied
    // inside the turn in which a group became durable, before that group's own apply. With
    // `maxDirtySamples` 2 the flusher starts at once and writes the samples the recompute moved;
    // a record written then carried the recompute's LSN without the group's batch, and the
    // batch's apply (live, and replay after a crash) skipped those samples as already held.
    const { dir, store, run, engine } = await openStoreRun('motive-apply-order-', dirs, K, 'dot', {
      syncCommits: true,
      commitDelayMs: 0,
      maxDirtySamples: 2,
      flushIntervalMs: 60_000,
    });
    const weighting = new WeightingService(
      store,
      { policy: 'downweight', minSeen: 1, beta: 1, wMin: 0.05, quarantineZ: -4, minDelta: 0.01, intervalMs: 60_000 },
      createLogger('warn'),
    );
    const ids = Array.from({ length: 40 }, (_, i) => `clip-${i}`);
    const r = rng(31);
    const queries = Float32Array.from({ length: 2 * K }, () => r.normal());
    /** Float64 reference of every clip's evidence: seen and the sum over its batches of lr · <g, q_j>. */
    const expected = new Map<string, { seen: number; sums: number[] }>(ids.map((id) => [id, { seen: 0, sums: [0, 0] }]));
    const batchOf = (seq: number) => {
      const sketches = new Float32Array(ids.length * K);
      // Scores spread over the clips, so the recompute moves some weights below 1.
      for (let i = 0; i < ids.length; i++)
        for (let d = 0; d < K; d++) sketches[i * K + d] = r.normal() * 0.1 + (i / 10 - 2) * (queries[d] as number);
      ids.forEach((id, i) => {
        const e = expected.get(id)!;
        e.seen++;
        for (let j = 0; j < 2; j++) {
          let dot = 0;
          for (let d = 0; d < K; d++) dot += (sketches[i * K + d] as number) * (queries[j * K + d] as number);
          e.sums[j]! += dot;
        }
      });
      const wire = new Uint8Array(sketches.buffer.slice(0));
      return {
        runId: 'r',
        rank: 0,
        seq,
        step: seq,
        lr: 1,
        sampleIds: ids,
        sketches,
        wire,
        wireDtype: 'float32' as const,
        bytes: wire.byteLength,
      };
    };
    const check = (at: string): void => {
      for (const [id, e] of expected) {
        const s = run.samples.get(id);
        expect(s?.seen, `${at}: ${id} seen`).toBe(e.seen);
        const sums = run.sumsOf(s!);
        for (let j = 0; j < 2; j++) expect(sums[j]!, `${at}: ${id} sum ${j}`).toBeCloseTo(e.sums[j]!, 3);
      }
    };
    let reopened: Store | undefined;
    try {
      await engine.submitQueries({
        runId: 'r',
        version: 1,
        step: 0,
        ids: ['q0', 'q1'],
        groups: [],
        sketches: queries,
        bytes: queries.byteLength,
      });
      await engine.submitBatch(batchOf(1));
      await store.flush();
      // The recompute starts where an Ack would be sent: its commit follows the group's at once.
      let recomputed: Promise<void> | undefined;
      await engine.submitBatch(batchOf(2), () => {
        recomputed = weighting.recompute('r');
      });
      await recomputed;
      expect(ids.some((id) => run.samples.get(id)!.weight < 1)).toBe(true);
      check('live');
      // And as the store holds it: its records, reopened.
      weighting.close();
      await store.flush();
      await store.close();
      reopened = await Store.open({ dataDir: dir, mapSizeBytes: 1 << 30 });
      const again = reopened.run('r')!;
      for (const [id, e] of expected) expect(again.samples.get(id)?.seen, `reopened: ${id} seen`).toBe(e.seen);
    } finally {
      weighting.close();
      if (reopened !== undefined) await reopened.close();
      else await store.close();
    }
  });

  it("tells the trainers a recompute's weights at its commit, and a snapshot taken before its apply holds them", async () => {
    const { store, run, engine } = await openStoreRun('motive-recompute-told-', dirs, K, 'dot', { syncCommits: true, commitDelayMs: 0 });
    const weighting = new WeightingService(
      store,
      { policy: 'downweight', minSeen: 1, beta: 1, wMin: 0.05, quarantineZ: -4, minDelta: 0.01, intervalMs: 60_000 },
      createLogger('warn'),
    );
    try {
      const r = rng(37);
      const queries = Float32Array.from({ length: 2 * K }, () => r.normal());
      await engine.submitQueries({
        runId: 'r',
        version: 1,
        step: 0,
        ids: ['q0', 'q1'],
        groups: [],
        sketches: queries,
        bytes: queries.byteLength,
      });
      const ids = Array.from({ length: 40 }, (_, i) => `clip-${i}`);
      const sketches = new Float32Array(ids.length * K);
      for (let i = 0; i < ids.length; i++)
        for (let d = 0; d < K; d++) sketches[i * K + d] = r.normal() * 0.1 + (i / 10 - 2) * (queries[d] as number);
      const wire = new Uint8Array(sketches.buffer.slice(0));
      await engine.submitBatch({
        runId: 'r',
        rank: 0,
        seq: 1,
        step: 1,
        lr: 1,
        sampleIds: ids,
        sketches,
        wire,
        wireDtype: 'float32',
        bytes: wire.byteLength,
      });
      const told: Array<{
        version: number;
        ids: string[];
        weights: number[];
        inMemory: number[];
        snapshot: Map<string, number>;
        snapshotVersion: number;
      }> = [];
      weighting.onTrainerUpdate((e) => {
        // What a trainer attaching now would be sent.
        const snap = weighting.snapshot(run);
        told.push({
          version: e.version,
          ids: [...e.sampleIds],
          weights: [...e.weights],
          inMemory: e.sampleIds.map((id) => run.samples.get(id)!.weight),
          snapshot: new Map(snap.sampleIds.map((id, i) => [id, snap.weights[i] as number])),
          snapshotVersion: snap.version,
        });
      });
      const fed: number[] = [];
      weighting.onUpdate((e) => fed.push(e.version));
      await weighting.recompute('r');
      expect(told).toHaveLength(1);
      const t = told[0]!;
      expect(t.weights.some((w) => w < 1)).toBe(true);
      // Told at the commit, before memory changed: in commit order with the groups' batch weights.
      expect(t.inMemory.every((w) => w === 1)).toBe(true);
      // The snapshot of that moment already holds them, at their version.
      expect(t.snapshotVersion).toBe(t.version);
      t.ids.forEach((id, i) => expect(t.snapshot.get(id) ?? 1, id).toBe(t.weights[i]));
      // Applied after, and the feed hears then.
      expect(fed).toEqual([t.version]);
      t.ids.forEach((id, i) => expect(run.samples.get(id)!.weight, id).toBe(t.weights[i]));
      expect(run.weightsVersion).toBe(t.version);
    } finally {
      weighting.close();
      await store.close();
    }
  });
});
