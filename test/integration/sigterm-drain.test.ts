/**
 * SIGTERM: the daemon drains within `shutdownGraceMs` — batches it already holds are committed and
 * acknowledged, later ones are refused with MOTIVE_INGEST_SHUTTING_DOWN — and exits 0. Every batch
 * acknowledged before the exit is in the store when it is opened again; every unacknowledged one
 * is resent after the restart and counted exactly once.
 *
 * The trainer side is a bare stream that follows docs/wire.md to the letter (resend everything
 * after the last Ack, in order), so the daemon's guarantee is tested on its own; the last test
 * runs the same drain with the TypeScript MotiveClient.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MotiveClient, type DaemonErrorInfo } from '../../trainer-hooks/ts/index.js';
import { Store } from '../../daemon/store/index.js';
import { CrashableDaemon, compareWithReference, referenceOf } from '../helpers/fault-harness.js';
import { batch, hello, rawStream, type DaemonReply } from '../helpers/raw-stream.js';
import { makeScenario, streamRank, type Scenario } from '../helpers/scenario.js';

const K = 64;
const RANKS = 2;
const WINDOW = 16;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One rank of a bare trainer: query sets before their step, at most WINDOW unacknowledged batches. */
class BareRank {
  acked = 0;
  sent = 0;
  ended = false;
  readonly errors: string[] = [];

  constructor(
    private readonly scn: Scenario,
    private readonly rank: number,
  ) {}

  /** Attaches, then streams from seq `from` until every batch is acknowledged or the stream ends. */
  async run(address: string, runId: string, from: number, onAck: () => void): Promise<{ welcomeSeq: number }> {
    const s = rawStream(address);
    s.write(hello(runId, K, { rank: this.rank, worldSize: RANKS }));
    const w = await s.next(10_000);
    if (w === 'end' || w.welcome === undefined) throw new Error(`rank ${this.rank}: no Welcome: ${JSON.stringify(w)}`);
    const batches = this.scn.ranks[this.rank] ?? [];
    const sentQs = new Set<number>();
    let next = from;
    this.ended = false;
    try {
      while (this.acked < batches.length) {
        while (next <= batches.length && next - 1 - this.acked < WINDOW) {
          const b = batches[next - 1]!;
          for (const qs of this.scn.querySets) {
            if (qs.step <= b.step && !sentQs.has(qs.version)) {
              s.write({
                queries: { version: qs.version, step: qs.step, queryIds: qs.ids, groups: [], sketches: Buffer.from(qs.values.buffer) },
              });
              sentQs.add(qs.version);
            }
          }
          s.write(batch(b.seq, b.ids, b.values, b.step, b.lr));
          this.sent = Math.max(this.sent, b.seq);
          next++;
        }
        const m: DaemonReply | 'end' = await s.next(15_000);
        if (m === 'end') {
          this.ended = true;
          break;
        }
        if (m.ack !== undefined) {
          this.acked = Math.max(this.acked, m.ack.seq);
          onAck();
        }
        if (m.error !== undefined) this.errors.push(m.error.code);
      }
    } finally {
      s.close();
    }
    return { welcomeSeq: w.welcome.lastCommittedSeq };
  }
}

interface DrainOutcome {
  exitCode: number | null;
  drainMs: number;
  acksDuringDrain: number;
  ackedBeforeExit: number[];
  sentBeforeExit: number[];
  errors: string[];
  storedCommits: number[];
  storedBatches: number;
  welcomeAfterRestart: number[];
  mismatches: string[];
}

async function drainScenario(
  daemon: CrashableDaemon,
  config: Record<string, unknown>,
  commitDelayMs: number,
  seed: number,
  batches = 160,
  minAcks = 30,
): Promise<DrainOutcome> {
  const scn = makeScenario({ seed, dim: K, queries: 4, ranks: RANKS, batches, batchSize: 8, pool: 100 });
  const ref = referenceOf(scn);
  const runId = `drain-${seed}`;
  await daemon.start(commitDelayMs, config);
  const ranks = scn.ranks.map((_, r) => new BareRank(scn, r));
  let terminating = false;
  let acksDuringDrain = 0;
  const phase1 = Promise.all(ranks.map((r) => r.run(daemon.address, runId, 1, () => terminating && acksDuringDrain++)));
  const acked = (): number => ranks.reduce((a, r) => a + r.acked, 0);
  const outstanding = (): number => ranks.reduce((a, r) => a + r.sent - r.acked, 0);
  while (acked() < minAcks || outstanding() < 8) await sleep(1);
  terminating = true;
  const t0 = performance.now();
  const exitCode = await daemon.stop('SIGTERM');
  const drainMs = performance.now() - t0;
  await phase1;
  const ackedBeforeExit = ranks.map((r) => r.acked);
  const sentBeforeExit = ranks.map((r) => r.sent);

  // The store as the next daemon will find it.
  const store = await Store.open({ dataDir: daemon.dataDir, mapSizeBytes: 64 * 1024 ** 3 });
  const run = store.run(runId);
  const storedCommits = ranks.map((_, rank) => run?.commits.get(rank) ?? 0);
  const storedBatches = run?.batches ?? 0;
  await store.close();

  // Restart; each rank resends everything after its last Ack (some of it is already committed).
  await daemon.start(0, config);
  const again = await Promise.all(ranks.map((r, rank) => r.run(daemon.address, runId, ackedBeforeExit[rank]! + 1, () => undefined)));
  const mismatches = await compareWithReference(daemon.baseUrl, runId, scn, ref, seed);
  await daemon.stop('SIGTERM');
  return {
    exitCode,
    drainMs,
    acksDuringDrain,
    ackedBeforeExit,
    sentBeforeExit,
    errors: ranks.flatMap((r) => r.errors),
    storedCommits,
    storedBatches,
    welcomeAfterRestart: again.map((a) => a.welcomeSeq),
    mismatches,
  };
}

describe('SIGTERM drain', () => {
  let daemon: CrashableDaemon | undefined;
  afterEach(async () => {
    await daemon?.dispose();
    daemon = undefined;
  });

  it('drains within shutdownGraceMs and exits 0; acknowledged batches are durable, the resent rest counts exactly once', async () => {
    daemon = await CrashableDaemon.create();
    const graceMs = 5000;
    const o = await drainScenario(daemon, { shutdownGraceMs: graceMs }, 80, 41);
    expect(o.exitCode).toBe(0);
    expect(o.drainMs).toBeLessThan(graceMs);
    expect(o.errors.every((c) => c === 'MOTIVE_INGEST_SHUTTING_DOWN')).toBe(true);
    // Durable: every acknowledged batch is in the store; the store counted each batch once.
    o.ackedBeforeExit.forEach((seq, rank) => {
      expect(o.storedCommits[rank]).toBeGreaterThanOrEqual(seq);
      expect(o.welcomeAfterRestart[rank]).toBe(o.storedCommits[rank]);
    });
    expect(o.storedBatches).toBe(o.storedCommits.reduce((a, b) => a + b, 0));
    // Batches were in flight, unacknowledged, at the exit: they were resent.
    expect(o.sentBeforeExit.reduce((a, s, r) => a + s - o.ackedBeforeExit[r]!, 0)).toBeGreaterThan(0);
    expect(o.mismatches).toEqual([]);
  }, 60_000);

  // After the grace, RunningDaemon.stop refuses what is still queued (never acknowledged: the
  // trainers resend it) and waits only for the commits already under way and the closing ones: at
  // most two groups in flight, a weights recompute in flight and the final one, a flush in flight
  // and the final one. Before, it committed the whole queue one group at a time (measured:
  // SIGTERM → exit 7.8 s with shutdownGraceMs 300), and later kept committing queued groups
  // while it closed (2.0 s in one CI run).
  it('exits within shutdownGraceMs plus the closing commits even when the queue holds more than the grace allows', async () => {
    daemon = await CrashableDaemon.create();
    const graceMs = 300;
    const commitDelayMs = 100;
    // maxGroupBytes below one batch: every batch is its own 100 ms commit, so 8+ queued batches
    // take longer than the grace.
    const o = await drainScenario(
      daemon,
      { shutdownGraceMs: graceMs, store: { commitDelayMs, maxGroupBytes: 1024 } },
      commitDelayMs,
      43,
      60,
      10,
    );
    o.ackedBeforeExit.forEach((seq, rank) => expect(o.storedCommits[rank]).toBeGreaterThanOrEqual(seq));
    expect(o.storedBatches).toBe(o.storedCommits.reduce((a, b) => a + b, 0));
    expect(o.mismatches).toEqual([]);
    expect(o.exitCode).toBe(0);
    const closingCommits = 6;
    expect(o.drainMs, `SIGTERM → exit took ${o.drainMs.toFixed(0)} ms`).toBeLessThan(graceMs + closingCommits * commitDelayMs + 1000);
  }, 60_000);

  // Daemon bug: during a drain a stream that sends one more message is failed at once with
  // MOTIVE_INGEST_SHUTTING_DOWN and ended (TrainerStream.closed), so the Acks of its batches that
  // the drain then commits are dropped: the trainer must resend batches that are already durable
  // (measured: a rank with 32 batches committed had received Acks up to 17). Safe (exactly-once
  // holds), but it contradicts "let queued batches commit and be acknowledged".
  it('acknowledges, before ending a stream, every batch of it that the drain commits', async () => {
    daemon = await CrashableDaemon.create();
    const o = await drainScenario(daemon, { shutdownGraceMs: 5000 }, 80, 45);
    expect(o.acksDuringDrain).toBeGreaterThan(0);
    expect(o.ackedBeforeExit).toEqual(o.storedCommits);
  }, 60_000);

  // Client bug (trainer-hooks/ts/client.ts, open()): a fatal Error that arrives before the Welcome
  // is kept as permanent, whatever its code. When the client reconnects while the daemon is still
  // draining, its Hello is answered with MOTIVE_INGEST_SHUTTING_DOWN ("reconnect to its
  // successor", docs/wire.md) and the client gives up: send()/flush() throw MotiveClientError and
  // the unacknowledged batches are never resent.
  it('MotiveClient reconnects through a drain and resends what was not acknowledged', async () => {
    daemon = await CrashableDaemon.create();
    await daemon.start(80, { shutdownGraceMs: 5000 });
    const scn = makeScenario({ seed: 47, dim: K, queries: 4, ranks: 1, batches: 120, batchSize: 8, pool: 100 });
    const ref = referenceOf(scn);
    const c = new MotiveClient({
      dtype: 'float32',
      address: daemon.address,
      runId: 'drain-client',
      dim: K,
      maxUnacked: 16,
      reconnectDelayMs: 50,
      maxReconnectDelayMs: 50,
    });
    const errors: string[] = [];
    c.on('daemon-error', (e: DaemonErrorInfo) => errors.push(e.code));
    await c.connect();
    let acked = 0;
    c.on('ack', () => acked++);
    const d = daemon;
    const sender = (async () => {
      await streamRank(c, scn, 0);
      await c.flush(60_000);
    })();
    const failed = sender.then(
      () => undefined,
      (e: unknown) => e,
    );
    while (acked < 20) await sleep(1);
    await d.stop('SIGTERM');
    await d.start(0, { shutdownGraceMs: 5000 });
    const err = await failed;
    c.close();
    expect(err, `errors seen by the client: ${errors.join(', ')}`).toBeUndefined();
    expect(await compareWithReference(d.baseUrl, 'drain-client', scn, ref, 47)).toEqual([]);
  }, 60_000);
});
