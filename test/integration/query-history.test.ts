/**
 * A run's query-set history: every version is kept, but only the newest few hold their sketches
 * in memory (QUERY_SKETCHES_KEPT). A lagging rank's batch, at a step whose query set is older than
 * those, is scored against that set's sketches read back from the store, before and after a
 * restart; every sum equals the float64 reference.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { MotiveClient } from '../../trainer-hooks/ts/index.js';
import { QUERY_SKETCHES_KEPT, RunState } from '../../daemon/store/run-state.js';
import { ReferenceModel, relErr, rng } from '../helpers/reference.js';
import { startTestDaemon, tempDir } from '../helpers/daemon.js';

const K = 32;
const RUN = 'history';
const SETS = QUERY_SKETCHES_KEPT + 3;

describe('query-set history', () => {
  const dir = tempDir('motive-query-history-');
  const r = rng(5);
  const ref = new ReferenceModel(K);
  const vec = (rows: number): Float32Array => Float32Array.from({ length: rows * K }, () => r.normal());
  const seqs = [0, 0];

  afterAll(() => dir.remove());

  function client(port: number, rank: number): MotiveClient {
    return new MotiveClient({
      address: `127.0.0.1:${port}`,
      runId: RUN,
      dim: K,
      rank,
      worldSize: 2,
      dtype: 'float32',
      projection: { kind: 'gaussian', seed: 3, fingerprint: 'fp-history' },
    });
  }

  async function batch(c: MotiveClient, rank: number, step: number): Promise<void> {
    const ids = Array.from({ length: 6 }, (_, i) => `clip-${(step * 7 + i) % 11}`);
    const values = vec(ids.length);
    const lr = 0.01 + r.int(5) / 100;
    await c.send(step, lr, ids, values);
    ref.addBatch(rank, (seqs[rank] = (seqs[rank] as number) + 1), step, lr, ids, [...values]);
  }

  async function expectSums(base: string): Promise<void> {
    for (const id of ref.samples.keys()) {
      const got = (await (await fetch(`${base}/v1/runs/${RUN}/samples/${encodeURIComponent(id)}`)).json()) as { querySums: number[] };
      expect(relErr(got.querySums, ref.querySums(id)), id).toBeLessThanOrEqual(1e-5);
    }
  }

  it('scores late batches against query sets whose sketches left memory, also after a restart', async () => {
    let daemon = await startTestDaemon({}, dir.path);
    const c = client(daemon.grpcPort, 0);
    await c.connect();
    for (let v = 1; v <= SETS; v++) {
      // Version 5 adds a query: later sets' columns are not 0..m-1.
      const ids = v >= 5 ? ['q0', 'q1', 'q2', 'q3'] : ['q0', 'q1', 'q2'];
      const values = vec(ids.length);
      c.setQueries(v, v * 10, ids, values);
      ref.addQuerySet(v, v * 10, ids, [...values]);
      await batch(c, 0, v * 10 + 1);
    }
    await c.flush();
    const run = daemon.store.run(RUN);
    expect(run?.querySets.map((q) => q.sketches !== undefined)).toEqual(
      Array.from({ length: SETS }, (_, i) => i >= SETS - QUERY_SKETCHES_KEPT),
    );
    expect(run?.latestQuerySet()?.version).toBe(SETS);
    // Rank 1 lags: steps 15, 25, 35 are in versions 1-3, no longer in memory; 55 and 65 are not.
    let late = client(daemon.grpcPort, 1);
    await late.connect();
    for (const step of [15, 25, 35, 55, 65]) await batch(late, 1, step);
    await late.flush();
    expect(daemon.store.run(RUN)?.batches).toBe(SETS + 5);
    await expectSums(`http://127.0.0.1:${daemon.httpPort}`);
    c.close();
    late.close();
    await daemon.cleanup();

    daemon = await startTestDaemon({}, dir.path);
    try {
      const reopened = daemon.store.run(RUN);
      expect(reopened?.querySets.map((q) => q.version)).toEqual(Array.from({ length: SETS }, (_, i) => i + 1));
      expect(reopened?.querySets.filter((q) => q.sketches !== undefined).map((q) => q.version)).toEqual(
        Array.from({ length: QUERY_SKETCHES_KEPT }, (_, i) => SETS - QUERY_SKETCHES_KEPT + 1 + i),
      );
      late = client(daemon.grpcPort, 1);
      await late.connect();
      // A version the run has is a duplicate, whatever it holds.
      late.setQueries(1, 10, ['q0'], vec(1));
      for (const step of [12, 47]) await batch(late, 1, step);
      await late.flush();
      expect(daemon.store.run(RUN)?.batches).toBe(SETS + 7);
      await expectSums(`http://127.0.0.1:${daemon.httpPort}`);
      late.close();
    } finally {
      await daemon.cleanup();
    }
  });

  it('finds the set in force at a step like a scan of the history', () => {
    const state = new RunState({
      id: 'x',
      dim: 1,
      dtype: 'float32',
      projection: { kind: 'gaussian', seed: '1', dim: 1, fingerprint: 'f' },
      scoreMode: 'cosine',
      worldSize: 1,
      createdAtMs: 0,
    });
    // Added out of order, steps repeated and not increasing with the version: the history is
    // sorted by (step, version).
    const stepOf = [0, 10, 10, 50, 30, 30, 30, 45, 20, 60, 60];
    for (const version of [5, 2, 9, 1, 7, 3, 8, 4, 6, 10])
      state.addQuerySet({
        version,
        step: stepOf[version] as number,
        ids: ['q'],
        groups: [],
        columns: Int32Array.of(0),
        sketches: Float32Array.of(version),
        receivedAtMs: 0,
      });
    for (let step = -1; step <= 70; step++) {
      // The largest step at or before it, ties by the largest version.
      let want: number | undefined;
      for (let v = 1; v <= 10; v++) {
        const s = stepOf[v] as number;
        if (s > step) continue;
        if (want === undefined || s > (stepOf[want] as number) || (s === stepOf[want] && v > want)) want = v;
      }
      expect(state.querySetAt(step)?.version, `step ${step}`).toBe(want);
    }
    // The newest four in (step, version) order keep their sketches.
    expect(state.querySets.filter((q) => q.sketches !== undefined).map((q) => q.version)).toEqual([7, 3, 9, 10]);
    expect(state.latestQuerySet()?.version).toBe(10);
    expect(state.hasQueryVersion(4)).toBe(true);
    expect(state.hasQueryVersion(11)).toBe(false);
  });
});
