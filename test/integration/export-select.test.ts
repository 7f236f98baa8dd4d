/**
 * Offline selection and export on a known run:
 * - `motive select` reproduces the selection computed from the float64 reference
 *   (test/helpers/reference.ts): votes over per-query 90th-percentile cuts, ties by score;
 * - `motive export` to Parquet and CSV, read back by DuckDB (an independent reader; the Parquet file
 *   is written by parquet-wasm, i.e. Rust's arrow-rs reading the daemon's Arrow IPC stream), holds
 *   the values the REST API answers, motion descriptors included;
 * - the Arrow export route streams with backpressure: a client that stops reading stops the
 *   producer, and a slow client still gets every row.
 */
import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DuckDBInstance } from '@duckdb/node-api';
import { RecordBatchReader } from 'apache-arrow';
import { runCli } from '../../daemon/cli/cli.js';
import { MotiveClient } from '../../trainer-hooks/ts/index.js';
import { ReferenceModel, decodeBytes } from '../helpers/reference.js';
import { makeScenario, streamRank } from '../helpers/scenario.js';
import { startTestDaemon, tempDir } from '../helpers/daemon.js';

const DIM = 16;
const RUN = 'offline';

interface RestSample {
  id: string;
  score: number;
  seen: number;
  votes: number;
  weight: number;
  lastStep: number;
  querySums: number[];
  fused: number | null;
  check: number | null;
  motion: Record<string, number | boolean | string> | null;
}

const f32 = (v: Float32Array): number[] => decodeBytes(Buffer.from(v.buffer, v.byteOffset, v.byteLength), 'float32');

describe('motive select and motive export on a known run', () => {
  const dir = tempDir('motive-export-');
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  let url: string;
  const ref = new ReferenceModel(DIM);
  const scn = makeScenario({ seed: 31, dim: DIM, queries: 5, ranks: 2, batches: 80, batchSize: 6, pool: 150 });
  const io = { lines: [] as string[], out: (s: string) => void io.lines.push(s), err: (s: string) => void io.lines.push(s) };
  const rest = new Map<string, RestSample>();

  beforeAll(async () => {
    daemon = await startTestDaemon({ weights: { intervalMs: 10, minSeen: 1 } });
    url = `http://127.0.0.1:${daemon.httpPort}`;
    for (const qs of scn.querySets) ref.addQuerySet(qs.version, qs.step, qs.ids, f32(qs.values));
    const clients = scn.ranks.map(
      (_, rank) =>
        new MotiveClient({
          dtype: 'float32',
          address: `127.0.0.1:${daemon.grpcPort}`,
          runId: RUN,
          dim: DIM,
          rank,
          worldSize: scn.ranks.length,
        }),
    );
    await Promise.all(clients.map((c) => c.connect()));
    await Promise.all(
      clients.map(async (c, rank) => {
        await streamRank(c, scn, rank, { beforeBatch: (b) => ref.addBatch(rank, b.seq, b.step, b.lr, b.ids, f32(b.values)) });
        await c.flush();
        c.close();
      }),
    );
    // Motion profiles for a third of the clips; the rest export as nulls.
    const ids = [...ref.samples.keys()].sort();
    const profiles = ids
      .filter((_, i) => i % 3 === 0)
      .map((id, i) => ({
        id,
        hash: (i.toString(16).padStart(2, '0') + 'ab').repeat(16),
        path: `/clips/${id}.mp4`,
        profiledAtMs: 1_700_000_000_000 + i,
        dynamic: i % 2 === 0,
        dynamicDegree: 1.5 + i / 7,
        flowMean: 0.25 * i,
        flowTop5: 3 + i / 3,
        jitter: 0.1 + i / 11,
        reversals: (i % 4) / 4,
        staticFraction: (i % 5) / 5,
        sceneCuts: i % 2,
        frames: 16,
      }));
    const res = await fetch(`${url}/v1/profiles`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ profiles }),
    });
    expect(res.status).toBe(200);
    // Weights are recomputed shortly after the last commit: wait until they are settled.
    let previous = '';
    for (;;) {
      const now = JSON.stringify(await (await fetch(`${url}/v1/runs/${RUN}/weights`)).json());
      if (now === previous) break;
      previous = now;
      await new Promise((r) => setTimeout(r, 150));
    }
    for (const id of ids)
      rest.set(id, (await (await fetch(`${url}/v1/runs/${RUN}/samples/${encodeURIComponent(id)}`)).json()) as RestSample);
  });

  afterAll(async () => {
    await daemon.cleanup();
    dir.remove();
  });

  /** The reference selection: votes at the 90th percentile, ties by score then id; ceil(10%). */
  function referenceSelection(method: 'votes' | 'score', fraction: number): string[] {
    const votes = ref.votes(90);
    const rows = [...ref.samples.keys()].map((id) => ({ id, votes: votes.get(id)!, score: ref.score(id) }));
    const byId = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
    if (method === 'votes') rows.sort((a, b) => b.votes - a.votes || b.score - a.score || byId(a.id, b.id));
    else rows.sort((a, b) => b.score - a.score || byId(a.id, b.id));
    return rows.slice(0, Math.ceil(rows.length * fraction)).map((r) => r.id);
  }

  it('motive select reproduces the reference selection (votes and score, JSONL and CSV)', async () => {
    const jsonl = join(dir.path, 'top.jsonl');
    expect(await runCli(['select', '--run', RUN, '--top', '10%', '--out', jsonl, '--url', url], io)).toBe(0);
    const picked = (await readFile(jsonl, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { rank: number; id: string; votes: number; score: number; path: string | null });
    const want = referenceSelection('votes', 0.1);
    expect(want.length).toBe(Math.ceil(ref.samples.size / 10));
    expect(picked.map((p) => p.id)).toEqual(want);
    const refVotes = ref.votes(90);
    for (const p of picked) {
      expect(p.votes).toBe(refVotes.get(p.id));
      expect(p.path).toBe(rest.get(p.id)!.motion === null ? null : `/clips/${p.id}.mp4`);
    }

    const csv = join(dir.path, 'top.csv');
    expect(await runCli(['select', '--run', RUN, '--top', '25%', '--method', 'score', '--out', csv, '--url', url], io)).toBe(0);
    const lines = (await readFile(csv, 'utf8')).trim().split('\n');
    expect(lines[0]).toBe('rank,id,path,votes,score,weight,seen');
    expect(lines.slice(1).map((l) => l.split(',')[1])).toEqual(referenceSelection('score', 0.25));
    expect(io.lines.join('')).toContain(`selected ${want.length} of ${ref.samples.size} clip(s) of run offline by votes`);
  });

  it('exports Parquet and CSV that DuckDB reads back with the REST values', async () => {
    const parquet = join(dir.path, 'run.parquet');
    const csv = join(dir.path, 'run.csv');
    expect(await runCli(['export', '--run', RUN, '--format', 'parquet', '--out', parquet, '--url', url], io)).toBe(0);
    expect(await runCli(['export', '--run', RUN, '--format', 'csv', '--out', csv, '--url', url], io)).toBe(0);
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    try {
      const fromParquet = await conn.runAndReadAll(
        `SELECT id, seen, last_step, score, votes, weight, query_sums, fused, "check", dynamic, dynamic_degree, jitter, static_fraction, scene_cuts, clip_path, clip_hash
         FROM read_parquet('${parquet}') ORDER BY id`,
      );
      const rows = fromParquet.getRowObjectsJS() as Array<Record<string, unknown>>;
      expect(rows).toHaveLength(rest.size);
      let profiled = 0;
      for (const r of rows) {
        const s = rest.get(r['id'] as string)!;
        expect(Number(r['seen'])).toBe(s.seen);
        expect(Number(r['last_step'])).toBe(s.lastStep);
        expect(r['score']).toBe(s.score);
        expect(r['votes']).toBe(s.votes);
        expect(r['weight']).toBe(s.weight);
        expect(r['query_sums']).toEqual(s.querySums);
        expect(r['fused']).toBe(s.fused);
        expect(r['check']).toBe(s.check);
        if (s.motion === null) {
          expect(r['jitter']).toBeNull();
          expect(r['clip_path']).toBeNull();
        } else {
          profiled++;
          expect(r['dynamic']).toBe(s.motion['dynamic']);
          expect(r['dynamic_degree']).toBe(s.motion['dynamicDegree']);
          expect(r['jitter']).toBe(s.motion['jitter']);
          expect(r['static_fraction']).toBe(s.motion['staticFraction']);
          expect(r['scene_cuts']).toBe(s.motion['sceneCuts']);
          expect(r['clip_hash']).toBe(s.motion['hash']);
          expect(r['clip_path']).toBe(`/clips/${s.id}.mp4`);
        }
      }
      expect(profiled).toBe(Math.ceil(rest.size / 3));

      const fromCsv = await conn.runAndReadAll(`SELECT * FROM read_csv('${csv}', header = true, all_varchar = true) ORDER BY id`);
      const csvRows = fromCsv.getRowObjectsJS() as Array<Record<string, string | null>>;
      expect(csvRows).toHaveLength(rest.size);
      const run = (await (await fetch(`${url}/v1/runs/${RUN}`)).json()) as { queryIds: string[] };
      for (const r of csvRows) {
        const s = rest.get(r['id']!)!;
        expect(Number(r['score'])).toBe(s.score);
        expect(Number(r['votes'])).toBe(s.votes);
        expect(Number(r['seen'])).toBe(s.seen);
        run.queryIds.forEach((q, j) => expect(Number(r[`query_sum:${q}`])).toBe(s.querySums[j]));
        if (s.motion !== null) expect(Number(r['jitter'])).toBe(s.motion['jitter']);
        else expect(r['jitter']).toBeNull();
      }
    } finally {
      conn.closeSync();
    }
  });

  it('describes the table in the Arrow schema metadata', async () => {
    const res = await fetch(`${url}/v1/runs/${RUN}/export.arrow`);
    expect(res.headers.get('content-type')).toBe('application/vnd.apache.arrow.stream');
    const reader = RecordBatchReader.from(new Uint8Array(await res.arrayBuffer()));
    reader.open();
    const meta = reader.schema.metadata;
    const run = (await (await fetch(`${url}/v1/runs/${RUN}`)).json()) as { queryIds: string[]; voteThresholds: number[] };
    expect(meta.get('motive.schema')).toBe('motive-samples/2');
    expect(JSON.parse(meta.get('motive.feature_names')!)).toEqual([]);
    expect(JSON.parse(meta.get('motive.query_ids')!)).toEqual(run.queryIds);
    expect(JSON.parse(meta.get('motive.vote_thresholds')!)).toEqual(run.voteThresholds);
    expect(meta.get('motive.vote_percentile')).toBe('90');
    expect((await fetch(`${url}/v1/runs/nope/export.arrow`)).status).toBe(404);
  });
});

describe('Arrow export backpressure', () => {
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  const SAMPLES = 120_000;

  beforeAll(async () => {
    daemon = await startTestDaemon();
    const run = await daemon.store.createRun({
      id: 'big',
      dim: 4,
      dtype: 'float32',
      projection: { kind: 'gaussian', seed: '1', dim: 4, fingerprint: 'fp' },
      scoreMode: 'cosine',
      worldSize: 1,
      createdAtMs: Date.now(),
    });
    for (const q of ['a', 'b', 'c', 'd']) run.queryColumn(q);
    await daemon.store.commit((tx) => tx.putRun(run));
    const entries = [];
    for (let i = 0; i < SAMPLES; i++) {
      const s = run.getOrCreateSample(`clip-${String(i).padStart(7, '0')}`);
      s.seen = 1 + (i % 3);
      s.lastStep = i;
      run.setSums(s, [i % 7, -(i % 5), (i % 11) / 3, 0.5]);
      entries.push({ sample: s });
    }
    await daemon.store.writeSamples('big', entries);
    run.revision++;
  }, 120_000);

  afterAll(async () => {
    vi.restoreAllMocks();
    await daemon.cleanup();
  });

  it('builds batches only as fast as the client reads, and a slow client gets every row', async () => {
    const profileLookups = vi.spyOn(daemon.store, 'profile');
    const chunks: Buffer[] = [];
    let bytes = 0;
    const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      request({ host: '127.0.0.1', port: daemon.httpPort, path: '/v1/runs/big/export.arrow' }, resolve).on('error', reject).end();
    });
    res.pause();
    // The client reads nothing for a while: the producer stalls once the socket buffers are full
    // (a few batches), and builds nothing more until the client reads again.
    await new Promise((r) => setTimeout(r, 1000));
    const rowsBuiltWhilePaused = profileLookups.mock.calls.length;
    await new Promise((r) => setTimeout(r, 1000));
    console.log(`arrow export: ${rowsBuiltWhilePaused} of ${SAMPLES} rows built while the client was paused`);
    expect(profileLookups.mock.calls.length).toBe(rowsBuiltWhilePaused);
    expect(rowsBuiltWhilePaused).toBeLessThan(SAMPLES / 2);
    // Then it reads slowly, a chunk at a time.
    await new Promise<void>((resolve, reject) => {
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        bytes += c.length;
        res.pause();
        setTimeout(() => res.resume(), 1);
      });
      res.on('end', resolve);
      res.on('error', reject);
      res.resume();
    });
    const reader = RecordBatchReader.from(Buffer.concat(chunks, bytes));
    let rows = 0;
    for (const batch of reader) rows += batch.numRows;
    expect(rows).toBe(SAMPLES);
    expect(profileLookups.mock.calls.length).toBe(SAMPLES);
  }, 120_000);
});
