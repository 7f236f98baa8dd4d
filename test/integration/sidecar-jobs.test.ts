/**
 * Side-car attribution against a real daemon (docs/wire.md, "Side-car attribution"): a trainer
 * reports what it trained on (deferred batches), workers lease the jobs and answer them with
 * sketches. Every job counts exactly once — through worker resends, overlapping answers, a
 * graceful restart and a SIGKILL of the daemon — checked against a float64 reference of the
 * query sums; the backlog bound drops the oldest jobs and counts them.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { runCli } from '../../daemon/cli/cli.js';
import { loadAttributionService } from '../../daemon/ingest/index.js';
import { freePort, spawnDaemon, startTestDaemon, tempDir, type ChildDaemon } from '../helpers/daemon.js';
import { hello, rawStream, type DaemonReply, type RawStream } from '../helpers/raw-stream.js';

const K = 8;
const QUERIES = [
  [1, 0.5, -0.25, 0, 0.75, -1, 0.5, 0.125],
  [-0.5, 1, 0.25, -0.75, 0, 0.5, 1, -0.25],
];

interface LeasedJob {
  id: number;
  step: number;
  lr: number;
  sampleId: string;
}

function leaser(address: string): {
  lease: (runId: string, max: number, leaseMs?: number) => Promise<{ jobs: LeasedJob[]; backlog: number }>;
  close: () => void;
} {
  const { Client } = loadAttributionService();
  const client = new Client(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    Lease(req: unknown, cb: (err: grpc.ServiceError | null, reply: { jobs: LeasedJob[]; backlog: number }) => void): void;
  };
  return {
    lease: (runId, max, leaseMs = 0) =>
      new Promise((resolve, reject) =>
        client.Lease({ runId, token: '', worker: 'test', maxJobs: max, leaseMs }, (err, reply) =>
          err === null ? resolve(reply) : reject(err),
        ),
      ),
    close: () => client.close(),
  };
}

/** A deterministic sketch row per (sample, step): what a worker computes for a job. */
function sketchOf(sampleId: string, step: number): number[] {
  let h = step * 7919 + 17;
  for (const c of sampleId) h = (h * 31 + c.charCodeAt(0)) % 1000003;
  return Array.from({ length: K }, (_, i) => Math.sin(h * 0.001 + i * 1.3) + (i === h % K ? 1 : 0));
}

function f32(rows: number[][]): Buffer {
  const a = Float32Array.from(rows.flat());
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** Float64 reference: Σ over answered jobs of lr · <ĝ, q̂_j>, and how often each sample was attributed. */
class Reference {
  readonly sums = new Map<string, number[]>();
  readonly seen = new Map<string, number>();
  add(job: LeasedJob): void {
    const g = sketchOf(job.sampleId, job.step).map((v) => Math.fround(v));
    const gn = Math.hypot(...g);
    const row = this.sums.get(job.sampleId) ?? QUERIES.map(() => 0);
    QUERIES.forEach((q, j) => {
      const qn = Math.hypot(...q);
      row[j] = (row[j] as number) + job.lr * q.reduce((s, v, i) => s + (v / qn) * ((g[i] as number) / gn), 0);
    });
    this.sums.set(job.sampleId, row);
    this.seen.set(job.sampleId, (this.seen.get(job.sampleId) ?? 0) + 1);
  }
}

function workerBatch(seq: number, jobs: readonly LeasedJob[], snapshotStep: number): unknown {
  const step = jobs[0]!.step;
  return {
    batch: {
      seq,
      step,
      lr: jobs[0]!.lr,
      sampleIds: jobs.map((j) => j.sampleId),
      sketches: f32(jobs.map((j) => sketchOf(j.sampleId, j.step))),
      losses: [],
      jobIds: jobs.map((j) => j.id),
      snapshotStep,
    },
  };
}

async function expectAcks(s: RawStream, seqs: number[]): Promise<DaemonReply[]> {
  const got: DaemonReply[] = [];
  while (got.filter((m) => m.ack !== undefined).length < seqs.length) {
    const m = await s.next(30_000);
    if (m === 'end') throw new Error('stream ended');
    if (m.error !== undefined) throw new Error(`${m.error.code}: ${m.error.message}`);
    got.push(m);
  }
  expect(got.flatMap((m) => (m.ack === undefined ? [] : [m.ack.seq]))).toEqual(seqs);
  return got;
}

async function attach(address: string, runId: string, extra: Record<string, unknown>): Promise<RawStream> {
  const s = rawStream(address);
  s.write(hello(runId, K, extra));
  const w = await s.next(30_000);
  if (w === 'end' || w.welcome === undefined) throw new Error(`no welcome: ${JSON.stringify(w)}`);
  return s;
}

function report(seq: number, step: number, lr: number, ids: string[]): unknown {
  return { batch: { seq, step, lr, sampleIds: ids, sketches: Buffer.alloc(0), losses: [], deferred: true } };
}

async function checkSums(base: string, runId: string, ref: Reference): Promise<void> {
  const run = (await (await fetch(`${base}/v1/runs/${runId}`)).json()) as { queryIds: string[] };
  expect(run.queryIds).toEqual(['q0', 'q1']);
  for (const [id, sums] of ref.sums) {
    const got = (await (await fetch(`${base}/v1/runs/${runId}/samples/${id}`)).json()) as { seen: number; querySums: number[] };
    expect(got.seen, id).toBe(ref.seen.get(id));
    got.querySums.forEach((v, j) =>
      expect(Math.abs(v - (sums[j] as number))).toBeLessThanOrEqual(1e-5 * Math.max(1e-3, Math.abs(sums[j] as number))),
    );
  }
}

describe('side-car jobs', () => {
  const dir = tempDir();
  let child: ChildDaemon | undefined;
  afterAll(() => {
    child?.proc.kill('SIGKILL');
    dir.remove();
  });

  it('attributes every reported (clip, step) exactly once through resends, a restart and a SIGKILL', async () => {
    const daemon = await startTestDaemon({}, dir.path);
    let address = `127.0.0.1:${daemon.grpcPort}`;
    let base = `http://127.0.0.1:${daemon.httpPort}`;
    const ref = new Reference();
    const trainer = await attach(address, 'sc', {});
    trainer.write({ queries: { version: 1, step: 0, queryIds: ['q0', 'q1'], groups: [], sketches: f32(QUERIES) } });
    trainer.write(report(1, 0, 0.1, ['a', 'b', 'c']));
    trainer.write(report(2, 1, 0.2, ['a', 'd']));
    trainer.write(report(2, 1, 0.2, ['a', 'd'])); // a resend: acknowledged, no new jobs
    await expectAcks(trainer, [1, 2, 2]);

    let l = leaser(address);
    const first = await l.lease('sc', 3);
    expect(first.backlog).toBe(5);
    // newest step first
    expect(first.jobs.map((j) => [j.step, j.sampleId])).toEqual([
      [1, 'a'],
      [1, 'd'],
      [0, 'a'],
    ]);
    // leased jobs are not leased again while their lease lasts
    const second = await l.lease('sc', 10);
    expect(second.jobs.map((j) => j.sampleId)).toEqual(['b', 'c']);

    const worker = await attach(address, 'sc', { worker: true, worldSize: 0 });
    // a worker's stream is not a trainer's
    const listed = (await (await fetch(`${base}/v1/runs`)).json()) as { runs: Array<{ id: string; attachedTrainers: number }> };
    expect(listed.runs.find((r) => r.id === 'sc')?.attachedTrainers).toBe(1);
    const step1 = first.jobs.filter((j) => j.step === 1);
    worker.write(workerBatch(1, step1, 1));
    worker.write(workerBatch(2, step1, 1)); // a resend: every job answered already
    // overlapping: step 0 'a' (open) with 'b' (open); then 'b' again with 'c'
    const step0 = [...first.jobs, ...second.jobs].filter((j) => j.step === 0);
    const [a0, b0, c0] = ['a', 'b', 'c'].map((id) => step0.find((j) => j.sampleId === id)!) as [LeasedJob, LeasedJob, LeasedJob];
    worker.write(workerBatch(3, [a0, b0], 0));
    worker.write(workerBatch(4, [b0, c0], 0));
    await expectAcks(worker, [1, 2, 3, 4]);
    for (const j of [...step1, a0, b0, c0]) ref.add(j);
    await checkSums(base, 'sc', ref);
    // an answer to a job answered already counts nothing, whatever it says
    worker.write(workerBatch(5, [{ ...a0, sampleId: 'zz' }], 0));
    await expectAcks(worker, [5]);
    expect((await l.lease('sc', 10)).backlog).toBe(0);

    // more work, then a graceful restart: open jobs stay, answered ones stay answered
    trainer.write(report(3, 2, 0.3, ['a', 'b', 'e']));
    await expectAcks(trainer, [3]);
    const third = (await l.lease('sc', 10)).jobs;
    expect(third.map((j) => j.sampleId)).toEqual(['a', 'b', 'e']);
    // a row that names an open job of another sample is rejected, and the job stays open
    worker.write(workerBatch(6, [{ ...third[1]!, sampleId: 'zz' }], 2));
    const bad = await worker.next(30_000);
    expect(bad !== 'end' && bad.error?.code).toBe('MOTIVE_INGEST_JOB_MISMATCH');
    worker.write(workerBatch(7, third.slice(0, 1), 1));
    await expectAcks(worker, [7]);
    ref.add(third[0]!);
    trainer.close();
    worker.close();
    l.close();
    await daemon.stop();

    const grpcPort = await freePort();
    const httpPort = await freePort();
    child = await spawnDaemon({ MOTIVE_DATA_DIR: dir.path, MOTIVE_GRPC_PORT: String(grpcPort), MOTIVE_HTTP_PORT: String(httpPort) });
    address = `127.0.0.1:${grpcPort}`;
    base = `http://127.0.0.1:${httpPort}`;
    await checkSums(base, 'sc', ref);
    l = leaser(address);
    const after = await l.lease('sc', 10);
    expect(after.jobs.map((j) => j.id)).toEqual(third.slice(1).map((j) => j.id));
    let w2 = await attach(address, 'sc', { worker: true });
    w2.write(workerBatch(1, [third[0]!, third[1]!], 2)); // third[0] answered before the restart
    await expectAcks(w2, [1]);
    ref.add(third[1]!);
    await checkSums(base, 'sc', ref);

    // SIGKILL right after the Ack of an answer: it survives, and its resend does not count again
    w2.write(workerBatch(2, [third[2]!], 2));
    await expectAcks(w2, [2]);
    ref.add(third[2]!);
    child.proc.kill('SIGKILL');
    await child.exited;
    w2.close();
    l.close();
    child = await spawnDaemon({ MOTIVE_DATA_DIR: dir.path, MOTIVE_GRPC_PORT: String(grpcPort), MOTIVE_HTTP_PORT: String(httpPort) });
    w2 = await attach(address, 'sc', { worker: true });
    w2.write(workerBatch(1, [third[2]!, third[1]!], 2));
    await expectAcks(w2, [1]);
    await checkSums(base, 'sc', ref);
    l = leaser(address);
    expect((await l.lease('sc', 10)).backlog).toBe(0);
    const stats = (await (await fetch(`${base}/v1/runs/sc`)).json()) as {
      sidecar?: { created: number; attributed: number; dropped: number };
    };
    expect(stats.sidecar).toMatchObject({ created: 8, attributed: 8, dropped: 0 });
    w2.close();
    l.close();
  }, 240_000);

  it('bounds the backlog: a report beyond sidecar.maxBacklog drops the oldest jobs and counts them', async () => {
    const daemon = await startTestDaemon({ sidecar: { maxBacklog: 4 } });
    try {
      const address = `127.0.0.1:${daemon.grpcPort}`;
      const trainer = await attach(address, 'cap', {});
      trainer.write(report(1, 0, 0.1, ['a', 'b', 'c']));
      trainer.write(report(2, 1, 0.1, ['d', 'e', 'f']));
      await expectAcks(trainer, [1, 2]);
      const l = leaser(address);
      const got = await l.lease('cap', 10);
      expect(got.backlog).toBe(4);
      expect(got.jobs.map((j) => `${j.step}${j.sampleId}`)).toEqual(['1d', '1e', '1f', '0c']);
      const run = (await (await fetch(`http://127.0.0.1:${daemon.httpPort}/v1/runs/cap`)).json()) as {
        sidecar?: { created: number; dropped: number; backlog: number };
      };
      expect(run.sidecar).toMatchObject({ created: 6, dropped: 2, backlog: 4 });
      // the live feed's top event carries the same counters
      const ws = new WebSocket(`ws://127.0.0.1:${daemon.httpPort}/v1/runs/cap/live?types=top`);
      const top = await new Promise<{ sidecar: { backlog: number; dropped: number } | null }>((resolve, reject) => {
        ws.on('message', (m: Buffer) => {
          const e = JSON.parse(m.toString()) as { type: string; sidecar: { backlog: number; dropped: number } | null };
          if (e.type === 'top') resolve(e);
        });
        ws.on('error', reject);
      });
      ws.close();
      expect(top.sidecar).toMatchObject({ backlog: 4, dropped: 2 });
      const out: string[] = [];
      const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
      expect(await runCli(['status', '--url', `http://127.0.0.1:${daemon.httpPort}`, '--rate-ms', '50'], io)).toBe(0);
      expect(out.join('')).toMatch(/side-car attribution\n/);
      expect(out.join('')).toMatch(/cap\s+4\s+4\s+0\s+6\s+2\s+0\.0\s+0\.00\s+0/);
      const metrics = await (await fetch(`http://127.0.0.1:${daemon.httpPort}/metrics`)).text();
      expect(metrics).toContain('motive_sidecar_backlog{run="cap"} 4');
      expect(metrics).toContain('motive_sidecar_leased{run="cap"} 4');
      expect(metrics).toContain('motive_sidecar_jobs_created_total{run="cap"} 6');
      expect(metrics).toContain('motive_sidecar_jobs_dropped_total{run="cap"} 2');
      expect(metrics).toContain('motive_sidecar_jobs_attributed_total{run="cap"} 0');
      // a worker Hello for a run that does not exist is refused (it never creates a run)
      const w = rawStream(address);
      w.write(hello('nope', K, { worker: true }));
      const m = await w.next(30_000);
      expect(m !== 'end' && m.error?.code).toBe('MOTIVE_INGEST_HELLO_INVALID');
      w.close();
      trainer.close();
      l.close();
    } finally {
      await daemon.cleanup();
    }
  }, 60_000);
});
