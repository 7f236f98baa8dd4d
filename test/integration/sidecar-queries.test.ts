/**
 * The query set in force for a side-car worker's batch (docs/method.md, "Side-car attribution"),
 * against a real daemon: a backlog drained newest first gets its sets at ever older snapshots, so
 * a job older than every set the daemon holds is scored against the earliest one rather than
 * left out of the sums; a trainer's batch before the first set still adds nothing (the in-process
 * rule). Float64 reference of the sums.
 */
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { loadAttributionService } from '../../daemon/ingest/index.js';
import { startTestDaemon, tempDir } from '../helpers/daemon.js';
import { hello, rawStream, type RawStream } from '../helpers/raw-stream.js';

const K = 4;
const LATE = [
  [1, 0, 0.5, 0],
  [0, -1, 0, 2],
];
const EARLY = [
  [0, 1, 0, 0],
  [1, 1, 1, 1],
];

interface LeasedJob {
  id: number;
  step: number;
  lr: number;
  sampleId: string;
}

function f32(rows: number[][]): Buffer {
  const a = Float32Array.from(rows.flat());
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

async function attach(address: string, runId: string, extra: Record<string, unknown>): Promise<RawStream> {
  const s = rawStream(address);
  s.write(hello(runId, K, extra));
  const w = await s.next(30_000);
  if (w === 'end' || w.welcome === undefined) throw new Error(`no welcome: ${JSON.stringify(w)}`);
  return s;
}

async function acks(s: RawStream, n: number): Promise<void> {
  for (let got = 0; got < n;) {
    const m = await s.next(30_000);
    if (m === 'end') throw new Error('stream ended');
    if (m.error !== undefined) throw new Error(`${m.error.code}: ${m.error.message}`);
    if (m.ack !== undefined) got++;
  }
}

function lease(address: string, runId: string): Promise<LeasedJob[]> {
  const { Client } = loadAttributionService();
  const client = new Client(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    Lease(req: unknown, cb: (err: grpc.ServiceError | null, reply: { jobs: LeasedJob[] }) => void): void;
  };
  return new Promise<LeasedJob[]>((resolve, reject) =>
    client.Lease({ runId, token: '', worker: 'test', maxJobs: 100, leaseMs: 0 }, (err, reply) =>
      err === null ? resolve(reply.jobs) : reject(err),
    ),
  ).finally(() => client.close());
}

/** Float64 lr · <ĝ, q̂_j> per query of `queries`. */
function contribution(lr: number, g: number[], queries: number[][]): number[] {
  const gf = g.map((v) => Math.fround(v));
  const gn = Math.hypot(...gf);
  return queries.map((q) => {
    const qn = Math.hypot(...q);
    return lr * q.reduce((s, v, i) => s + (v / qn) * ((gf[i] as number) / gn), 0);
  });
}

describe('side-car query set in force', () => {
  it('scores a worker job older than every query set against the earliest set', async () => {
    const dir = tempDir();
    const daemon = await startTestDaemon({}, dir.path);
    try {
      const address = `127.0.0.1:${daemon.grpcPort}`;
      const base = `http://127.0.0.1:${daemon.httpPort}`;
      const trainer = await attach(address, 'sq', { worldSize: 2 });
      for (const [seq, step, id] of [
        [1, 1, 'a'],
        [2, 5, 'b'],
        [3, 9, 'c'],
      ] as const) {
        trainer.write({ batch: { seq, step, lr: 0.5, sampleIds: [id], sketches: Buffer.alloc(0), losses: [], deferred: true } });
      }
      await acks(trainer, 3);
      const jobs = new Map((await lease(address, 'sq')).map((j) => [j.sampleId, j]));
      const g = { a: [1, 2, 0, -1], b: [0, 1, 3, 1], c: [2, -1, 1, 0] };
      const answer = (seq: number, id: 'a' | 'b' | 'c', snapshotStep: number): unknown => {
        const j = jobs.get(id)!;
        return {
          batch: { seq, step: j.step, lr: j.lr, sampleIds: [id], sketches: f32([g[id]]), losses: [], jobIds: [j.id], snapshotStep },
        };
      };
      const worker = await attach(address, 'sq', { worker: true, worldSize: 0 });
      // newest first: the set of snapshot 8 (step 8), then step 9's job (in force), step 5's (older than every set)
      worker.write({ queries: { version: 1, step: 8, queryIds: ['q0', 'q1'], groups: [], sketches: f32(LATE) } });
      worker.write(answer(1, 'c', 8));
      worker.write(answer(2, 'b', 4));
      // then a set at an older snapshot, and step 1's job, older than it too: the earliest set now
      worker.write({ queries: { version: 2, step: 4, queryIds: ['q0', 'q1'], groups: [], sketches: f32(EARLY) } });
      worker.write(answer(3, 'a', 0));
      await acks(worker, 3);
      // a trainer's own batch before every set keeps the in-process rule: no score
      const lagging = await attach(address, 'sq', { rank: 1, worldSize: 2 });
      lagging.write({ batch: { seq: 1, step: 0, lr: 0.5, sampleIds: ['d'], sketches: f32([[1, 0, 0, 0]]), losses: [] } });
      await acks(lagging, 1);
      const expected: Record<string, number[]> = {
        c: contribution(0.5, g.c, LATE),
        b: contribution(0.5, g.b, LATE),
        a: contribution(0.5, g.a, EARLY),
        d: [0, 0],
      };
      for (const [id, sums] of Object.entries(expected)) {
        const got = (await (await fetch(`${base}/v1/runs/sq/samples/${id}`)).json()) as { seen: number; querySums: number[] };
        expect(got.seen, id).toBe(1);
        expect(got.querySums.length, id).toBe(2);
        got.querySums.forEach((v, j) => expect(Math.abs(v - (sums[j] as number)), `${id} q${j}`).toBeLessThanOrEqual(1e-6));
      }
      trainer.close();
      lagging.close();
      worker.close();
    } finally {
      await daemon.stop();
      dir.remove();
    }
  }, 120_000);
});
