/**
 * Crash safety: a child daemon is SIGKILLed at seeded points — inside a widened group commit
 * while acks are outstanding, and at crash points inside compaction and a weight recompute (with
 * a second kill in some trials) — and restarted on the same store and ports; three ranks with
 * live weights and per-clip features (one sending FLOAT16, two FLOAT32) resume by themselves.
 * Every stored quantity (REST: counters, seen, votes, sums, every G(z) coordinate, /attribute,
 * features, fused signal and weights, the run list) equals the float64 reference every trial.
 * `npm run test:crash` (scripts/fault-harness.ts) runs the full count: every kind of kill.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDaemonBundle, type DaemonBundle } from '../helpers/daemon-bundle.js';
import { CrashableDaemon, formatTrial, planTrial, runCrashTrial, type TrialPlan } from '../helpers/fault-harness.js';

/** Seed and plan index (the first kill's kind, fault-harness.ts FIRST): commit, compact, recompute. */
const TRIALS: ReadonlyArray<readonly [number, number]> = [
  [101, 1],
  [102, 6],
  [103, 8],
];

describe('SIGKILL at seeded points (fault harness, reduced)', () => {
  let daemon: CrashableDaemon;
  let bundle: DaemonBundle;
  const plans: TrialPlan[] = TRIALS.map(([seed, index]) => planTrial(seed, index));

  beforeAll(async () => {
    // The daemon's sources bundled once, as `npm run test:crash` runs them: restarts skip tsx.
    bundle = await buildDaemonBundle();
    daemon = await CrashableDaemon.create({ entry: bundle.entry });
    await daemon.start(plans[0]?.kills[0]?.commitDelayMs ?? 0);
  }, 60_000);
  afterAll(async () => {
    await daemon.dispose();
    bundle.remove();
  });

  it.each(plans.map((p, i) => [p.kills[0]?.point ?? p.kills[0]?.kind ?? 'none', p.seed, i] as const))(
    'kill %s (seed %i): the restarted store equals the reference',
    async (_kind, _seed, i) => {
      const plan = plans[i]!;
      const result = await runCrashTrial(daemon, plan, { nextCommitDelayMs: plans[i + 1]?.kills[0]?.commitDelayMs ?? 0 });
      expect(result.mismatches, formatTrial(result)).toEqual([]);
      expect(result.kills.length).toBe(plan.kills.length);
      // A crash point planned is reached (the daemon died there, not killed idle at the end).
      expect(result.kills.filter((k) => k.kind === 'idle').map((k) => k.point)).toEqual([]);
      expect(result.reconnects).toBeGreaterThan(0);
    },
    90_000,
  );
});

describe('slow store: the trainer client under long backpressure', () => {
  // Client bug (trainer-hooks/ts/client.ts, writeWithBackpressure): each write that meets
  // backpressure races once(s, 'drain') against once(s, 'close') and once(s, 'error'); when
  // 'drain' wins, the other two listeners stay on the stream until it closes. A trainer held back
  // by a slow store adds two listeners per blocked write for the life of the stream (Node prints
  // MaxListenersExceededWarning; in the 5-minute soak this is thousands of listeners and their
  // closures; measured here: 12 "close" listeners on the stream after 200 batches).
  it('keeps a bounded number of listeners on its stream', async () => {
    const { startTestDaemon } = await import('../helpers/daemon.js');
    const { MotiveClient } = await import('../../trainer-hooks/ts/index.js');
    const d = await startTestDaemon({ store: { commitDelayMs: 20 }, grpc: { streamInflightBytes: 64 * 1024 } });
    try {
      const K = 256;
      const N = 64;
      const c = new MotiveClient({
        dtype: 'float32',
        address: `127.0.0.1:${d.grpcPort}`,
        runId: 'listeners',
        dim: K,
        maxUnacked: 64,
        applyWeights: false,
      });
      await c.connect();
      const values = Float32Array.from({ length: N * K }, (_, i) => Math.sin(i));
      const ids = Array.from({ length: N }, (_, i) => `c${i}`);
      for (let step = 0; step < 200; step++) await c.send(step, 1e-3, ids, values);
      await c.flush();
      const stream = (c as unknown as { stream: NodeJS.EventEmitter }).stream;
      expect(stream.listenerCount('close')).toBeLessThan(10);
      expect(stream.listenerCount('error')).toBeLessThan(10);
      c.close();
    } finally {
      await d.cleanup();
    }
  }, 60_000);
});

describe('oversized messages and a full store (in-process daemon)', () => {
  it('ends only the stream that sent a message over grpc.maxMessageBytes', async () => {
    const { startTestDaemon } = await import('../helpers/daemon.js');
    const { batch, hello, rawStream } = await import('../helpers/raw-stream.js');
    const d = await startTestDaemon({ grpc: { maxMessageBytes: 64 * 1024 } });
    try {
      const K = 1024;
      const address = `127.0.0.1:${d.grpcPort}`;
      const a = rawStream(address);
      a.write(hello('big', K, { worldSize: 2 }));
      expect(await a.next()).toHaveProperty('welcome');
      a.write(batch(1, ['s1', 's2'], new Float32Array(2 * K).fill(0.5)));
      expect(await a.next()).toEqual({ ack: { seq: 1 } });
      // 32 rows × 4 KiB = 128 KiB: refused from the frame header, the stream ends.
      a.write(
        batch(
          2,
          Array.from({ length: 32 }, (_, i) => `t${i}`),
          new Float32Array(32 * K).fill(0.5),
        ),
      );
      expect(await a.next(10_000)).toBe('end');
      a.close();
      const b = rawStream(address);
      b.write(hello('big', K, { rank: 1, worldSize: 2 }));
      expect(await b.next()).toHaveProperty('welcome');
      b.write(batch(1, ['s3'], new Float32Array(K).fill(0.25)));
      expect(await b.next()).toEqual({ ack: { seq: 1 } });
      b.close();
      const run = d.store.run('big')!;
      expect(run.batches).toBe(2);
      expect([...run.samples.keys()].sort()).toEqual(['s1', 's2', 's3']);
    } finally {
      await d.cleanup();
    }
  });
});

describe('disk full (RLIMIT_FSIZE on the child daemon)', () => {
  const K = 1024;
  const N = 16;
  const TOTAL = 60;
  // Fresh ids in every batch: each adds N embeddings of 4 KiB, so a 2 MiB file fills in ~25.
  const rows = (seq: number): { ids: string[]; values: Float32Array } => ({
    ids: Array.from({ length: N }, (_, i) => `b${seq}-${i}`),
    values: Float32Array.from({ length: N * K }, (_, i) => Math.sin(seq * 131 + i)),
  });

  /** Streams one batch at a time until an Error or the end; returns what came back. */
  async function fill(address: string): Promise<{ lastAck: number; error: { code: string; fatal: boolean } | undefined; ended: boolean }> {
    const { batch, hello, rawStream } = await import('../helpers/raw-stream.js');
    const s = rawStream(address);
    s.write(hello('full', K));
    expect(await s.next()).toHaveProperty('welcome');
    let lastAck = 0;
    let error: { code: string; fatal: boolean } | undefined;
    let ended = false;
    for (let seq = 1; seq <= TOTAL; seq++) {
      const { ids, values } = rows(seq);
      s.write(batch(seq, ids, values, seq));
      const m = await s.next(10_000);
      if (m === 'end') {
        ended = true;
        break;
      }
      if (m.ack) lastAck = m.ack.seq;
      if (m.error) {
        error = m.error;
        break;
      }
    }
    s.close();
    return { lastAck, error, ended };
  }

  it('keeps every acknowledged batch; after a restart with room the resent rest counts exactly once', async () => {
    const { batch, hello, rawStream } = await import('../helpers/raw-stream.js');
    const daemon = await CrashableDaemon.create();
    try {
      await daemon.start(0, {}, 2048);
      const { lastAck } = await fill(daemon.address);
      expect(lastAck).toBeGreaterThan(0);
      expect(lastAck).toBeLessThan(TOTAL);
      await daemon.stop('SIGKILL');
      await daemon.start(0);
      const s = rawStream(daemon.address);
      s.write(hello('full', K));
      expect(await s.next()).toMatchObject({ welcome: { lastCommittedSeq: lastAck } });
      for (let seq = lastAck + 1; seq <= TOTAL; seq++) {
        const { ids, values } = rows(seq);
        s.write(batch(seq, ids, values, seq));
        expect(await s.next(10_000)).toEqual({ ack: { seq } });
      }
      s.close();
      const run = (await (await fetch(`${daemon.baseUrl}/v1/runs/full`)).json()) as { batches: number; samples: number };
      expect(run).toMatchObject({ batches: TOTAL, samples: TOTAL * N });
      const list = (await (await fetch(`${daemon.baseUrl}/v1/runs/full/samples?limit=2000`)).json()) as {
        samples: Array<{ seen: number }>;
      };
      expect(list.samples.every((x) => x.seen === 1)).toBe(true);
    } finally {
      await daemon.dispose();
    }
  }, 60_000);

  // Daemon bug (daemon/store/commit-log.ts, LogTransaction/StoreTx): the writes inside the transaction are
  // `void this.<db>.put(...)`; when LMDB's commit fails (here EIO/EFBIG at the file-size limit,
  // as on a full disk) lmdb-js rejects those promises with "Commit failed (see commitError for
  // details)", nobody handles them, and Node exits on the unhandled rejection. The daemon dies
  // (and, restarted on the same full disk, dies again) instead of answering a fatal
  // MOTIVE_STORE_FULL / MOTIVE_STORE_COMMIT and serving reads.
  it.each([false, true])(
    'stays up when the disk is full (syncCommits %s): a fatal MOTIVE_STORE_* error, reads still served',
    async (syncCommits) => {
      const daemon = await CrashableDaemon.create();
      try {
        await daemon.start(0, { store: { syncCommits } }, 2048);
        const { lastAck, error } = await fill(daemon.address);
        expect(error, `acked ${lastAck}, then the stream ended without an Error`).toBeDefined();
        expect(['MOTIVE_STORE_FULL', 'MOTIVE_STORE_COMMIT']).toContain(error?.code);
        expect(error?.fatal).toBe(true);
        const res = await fetch(`${daemon.baseUrl}/v1/runs/full`);
        expect(res.status).toBe(200);
        expect(((await res.json()) as { batches: number }).batches).toBe(lastAck);
      } finally {
        await daemon.dispose();
      }
    },
    60_000,
  );
});
