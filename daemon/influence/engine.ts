/**
 * The influence engine (DESIGN.md §5): a single writer that folds queued batches and query sets
 * into group commits. For each group it scores every batch against the query set in force at the
 * batch's step (onnxruntime MatMul), then applies seen / lastStep / S_j / G(z) updates and the
 * (run, rank) commit markers in one durable store transaction. Submissions resolve only after
 * that commit, which is what lets ingest acknowledge exactly-once.
 */
import { MotiveError, type Logger } from '../shared/index.js';
import type { QuerySetRecord, RunState, ScoreMode, Store, StoreTx } from '../store/index.js';
import type { MatMulKernel } from './matmul-kernel.js';
import { allFinite, normalizeRows, transpose } from './math.js';

/** A validated, decoded batch (DESIGN.md §4 SketchBatch). */
export interface BatchSubmission {
  readonly runId: string;
  readonly rank: number;
  readonly seq: number;
  readonly step: number;
  readonly lr: number;
  readonly sampleIds: readonly string[];
  /** [sampleIds.length × k] float32, raw (normalised here per the run's score mode). */
  readonly sketches: Float32Array;
  /** Wire bytes, for group sizing. */
  readonly bytes: number;
}

/** A validated, decoded query set. */
export interface QuerySubmission {
  readonly runId: string;
  readonly version: number;
  readonly step: number;
  readonly ids: readonly string[];
  readonly groups: readonly string[];
  /** [ids.length × k] float32, raw. */
  readonly sketches: Float32Array;
  readonly bytes: number;
}

/** committed: counted now; duplicate: already counted earlier, not counted again. */
export type SubmitOutcome = 'committed' | 'duplicate';

/** What one group commit changed, for weighting, the live feed and metrics. */
export interface CommitEvent {
  readonly runId: string;
  readonly batches: number;
  readonly sketches: number;
  readonly bytes: number;
  readonly lastStep: number;
  readonly samplesTouched: readonly string[];
  readonly querySets: readonly QuerySetRecord[];
  readonly commitMs: number;
}

export interface InfluenceEngineOptions {
  readonly maxGroupBytes: number;
  readonly scanChunkSamples: number;
  /** Most distinct samples per run; a batch that would add more is rejected. */
  readonly maxSamplesPerRun: number;
}

type Item =
  | { kind: 'batch'; sub: BatchSubmission; resolve: (o: SubmitOutcome) => void; reject: (e: unknown) => void }
  | { kind: 'queries'; sub: QuerySubmission; resolve: (o: SubmitOutcome) => void; reject: (e: unknown) => void };

interface PreparedBatch {
  readonly item: Extract<Item, { kind: 'batch' }>;
  readonly run: RunState;
  readonly duplicate: boolean;
  /** [n × m] products with the query set in force, or undefined before the first query set. */
  readonly products: Float32Array | undefined;
  readonly querySet: QuerySetRecord | undefined;
}

interface PreparedQueries {
  readonly item: Extract<Item, { kind: 'queries' }>;
  readonly run: RunState;
  readonly record: QuerySetRecord | undefined;
}

export class InfluenceEngine {
  private readonly store: Store;
  private readonly kernel: MatMulKernel;
  private readonly log: Logger;
  private readonly options: InfluenceEngineOptions;
  private readonly queue: Item[] = [];
  private queueHead = 0;
  private pumping = false;
  private pendingBytes = 0;
  private idle: Promise<void> = Promise.resolve();
  private idleResolve: (() => void) | undefined;
  private readonly transposed = new WeakMap<QuerySetRecord, Float32Array>();
  private readonly listeners: Array<(e: CommitEvent) => void> = [];

  constructor(store: Store, kernel: MatMulKernel, log: Logger, options: InfluenceEngineOptions) {
    this.store = store;
    this.kernel = kernel;
    this.log = log;
    this.options = options;
  }

  /** Subscribes to group commits. */
  onCommit(listener: (e: CommitEvent) => void): void {
    this.listeners.push(listener);
  }

  /** Wire bytes of the items queued or being committed. */
  get queuedBytes(): number {
    return this.pendingBytes;
  }

  /** Items waiting for a group commit. */
  get queueDepth(): number {
    return this.queue.length - this.queueHead;
  }

  submitBatch(sub: BatchSubmission): Promise<SubmitOutcome> {
    return new Promise((resolve, reject) => this.enqueue({ kind: 'batch', sub, resolve, reject }));
  }

  submitQueries(sub: QuerySubmission): Promise<SubmitOutcome> {
    return new Promise((resolve, reject) => this.enqueue({ kind: 'queries', sub, resolve, reject }));
  }

  /** Resolves when everything queued so far is committed. */
  drained(): Promise<void> {
    return this.queueDepth === 0 && !this.pumping ? Promise.resolve() : this.idle;
  }

  private enqueue(item: Item): void {
    this.pendingBytes += item.sub.bytes;
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      this.pendingBytes -= item.sub.bytes;
    };
    const { resolve, reject } = item;
    item.resolve = (o) => {
      settle();
      resolve(o);
    };
    item.reject = (e) => {
      settle();
      reject(e);
    };
    this.queue.push(item);
    if (!this.pumping) {
      this.pumping = true;
      this.idle = new Promise((r) => (this.idleResolve = r));
      void this.pump();
    }
  }

  private takeGroup(): Item[] {
    const group: Item[] = [];
    let bytes = 0;
    while (this.queueHead < this.queue.length) {
      const item = this.queue[this.queueHead] as Item;
      if (group.length > 0 && bytes + item.sub.bytes > this.options.maxGroupBytes) break;
      group.push(item);
      bytes += item.sub.bytes;
      this.queueHead++;
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
    return group;
  }

  private async pump(): Promise<void> {
    try {
      while (this.queueDepth > 0) {
        const group = this.takeGroup();
        try {
          await this.processGroup(group);
        } catch (err) {
          this.log.error({ err }, 'group commit failed');
          for (const item of group) item.reject(err);
        }
      }
    } finally {
      this.pumping = false;
      this.idleResolve?.();
    }
  }

  private runFor(runId: string): RunState {
    const run = this.store.run(runId);
    if (run === undefined) throw new MotiveError('MOTIVE_INGEST_INTERNAL', `run ${runId} is not registered`);
    return run;
  }

  private async processGroup(group: Item[]): Promise<void> {
    // Prepare: dedup, query-set resolution and the products. No state is mutated here.
    const seqSeen = new Map<string, number>();
    const newSamples = new Map<string, Set<string>>();
    const pendingQs = new Map<string, QuerySetRecord[]>();
    const prepared: Array<PreparedBatch | PreparedQueries> = [];
    for (const item of group) {
      let run: RunState;
      try {
        run = this.runFor(item.sub.runId);
      } catch (err) {
        item.reject(err);
        continue;
      }
      if (item.kind === 'queries') {
        const pending = pendingQs.get(run.info.id) ?? [];
        const dup = run.hasQueryVersion(item.sub.version) || pending.some((q) => q.version === item.sub.version);
        let record: QuerySetRecord | undefined;
        if (!dup) {
          const m = item.sub.ids.length;
          const sketches = item.sub.sketches;
          if (run.info.scoreMode === 'cosine') normalizeRows(sketches, m, run.info.dim);
          record = {
            version: item.sub.version,
            step: item.sub.step,
            ids: item.sub.ids,
            groups: item.sub.groups,
            columns: new Int32Array(m),
            sketches,
            receivedAtMs: Date.now(),
          };
          pending.push(record);
          pendingQs.set(run.info.id, pending);
        }
        prepared.push({ item, run, record });
        continue;
      }
      const sub = item.sub;
      const key = `${sub.runId}\u0000${sub.rank}`;
      const last = seqSeen.get(key) ?? run.commits.get(sub.rank) ?? 0;
      if (sub.seq <= last) {
        prepared.push({ item, run, duplicate: true, products: undefined, querySet: undefined });
        continue;
      }
      let fresh = newSamples.get(run.info.id);
      if (fresh === undefined) newSamples.set(run.info.id, (fresh = new Set()));
      const added = sub.sampleIds.filter((id) => !run.samples.has(id) && !fresh.has(id));
      if (run.samples.size + fresh.size + new Set(added).size > this.options.maxSamplesPerRun) {
        item.reject(
          new MotiveError('MOTIVE_INGEST_LIMIT_SAMPLES', `run ${run.info.id} is limited to ${this.options.maxSamplesPerRun} samples`),
        );
        continue;
      }
      for (const id of added) fresh.add(id);
      seqSeen.set(key, sub.seq);
      const n = sub.sampleIds.length;
      const k = run.info.dim;
      if (run.info.scoreMode === 'cosine') normalizeRows(sub.sketches, n, k);
      const qs = querySetAt(run, pendingQs.get(run.info.id) ?? [], sub.step);
      let products: Float32Array | undefined;
      if (qs !== undefined) {
        products = await this.kernel.multiply(sub.sketches, n, k, this.queryMatrix(qs, k), qs.ids.length);
        // Under `dot`, finite sketches can still overflow float32 products: never store Inf.
        if (!allFinite(products)) {
          item.reject(new MotiveError('MOTIVE_INGEST_BATCH_NONFINITE', 'products with the queries overflow float32'));
          seqSeen.set(key, last);
          continue;
        }
      }
      prepared.push({ item, run, duplicate: false, products, querySet: qs });
    }

    // Apply + commit: memory and disk change together inside one transaction.
    const events = new Map<string, { batches: number; sketches: number; bytes: number; touched: Set<string>; qs: QuerySetRecord[] }>();
    const started = performance.now();
    await this.store.commit((tx) => {
      const records = new Map<string, { buf: Buffer; g: Float32Array }>();
      const touchedRuns = new Set<RunState>();
      for (const p of prepared) {
        const ev = events.get(p.run.info.id) ?? { batches: 0, sketches: 0, bytes: 0, touched: new Set<string>(), qs: [] };
        events.set(p.run.info.id, ev);
        if ('record' in p) {
          if (p.record === undefined) continue;
          const cols = p.record.columns;
          p.record.ids.forEach((id, j) => (cols[j] = p.run.queryColumn(id)));
          p.run.addQuerySet(p.record);
          tx.putQuerySet(p.run.info.id, p.record);
          touchedRuns.add(p.run);
          ev.qs.push(p.record);
          continue;
        }
        if (p.duplicate) continue;
        this.applyBatch(tx, p, records, ev.touched);
        ev.batches++;
        ev.sketches += p.item.sub.sampleIds.length;
        ev.bytes += p.item.sub.bytes;
        touchedRuns.add(p.run);
      }
      for (const run of touchedRuns) {
        run.revision++;
        tx.putRun(run);
        const ev = events.get(run.info.id);
        if (ev === undefined) continue;
        for (const id of ev.touched) {
          const s = run.samples.get(id);
          if (s !== undefined) tx.putSample(run.info.id, s, records.get(`${run.info.id}\u0000${id}`)?.buf);
        }
      }
    });
    const commitMs = performance.now() - started;
    for (const p of prepared)
      p.item.resolve('record' in p ? (p.record === undefined ? 'duplicate' : 'committed') : p.duplicate ? 'duplicate' : 'committed');
    for (const [runId, ev] of events) {
      if (ev.batches === 0 && ev.qs.length === 0) continue;
      const run = this.store.run(runId);
      const event: CommitEvent = {
        runId,
        batches: ev.batches,
        sketches: ev.sketches,
        bytes: ev.bytes,
        lastStep: run?.lastStep ?? 0,
        samplesTouched: [...ev.touched],
        querySets: ev.qs,
        commitMs,
      };
      for (const l of this.listeners) {
        try {
          l(event);
        } catch (err) {
          this.log.error({ err }, 'commit listener failed');
        }
      }
    }
  }

  private applyBatch(tx: StoreTx, p: PreparedBatch, records: Map<string, { buf: Buffer; g: Float32Array }>, touched: Set<string>): void {
    const { run } = p;
    const sub = p.item.sub;
    const k = run.info.dim;
    const n = sub.sampleIds.length;
    const lr = sub.lr;
    const qs = p.querySet;
    const m = qs?.ids.length ?? 0;
    const nq = run.queryIds.length;
    for (let i = 0; i < n; i++) {
      const id = sub.sampleIds[i] as string;
      const sample = run.getOrCreateSample(id);
      if (sample.sums.length < nq) {
        const grown = new Float64Array(nq);
        grown.set(sample.sums);
        sample.sums = grown;
      }
      sample.seen++;
      if (sub.step > sample.lastStep || sample.seen === 1) sample.lastStep = sub.step;
      if (qs !== undefined && p.products !== undefined) {
        const cols = qs.columns;
        for (let j = 0; j < m; j++) {
          const col = cols[j] as number;
          sample.sums[col] = (sample.sums[col] as number) + lr * (p.products[i * m + j] as number);
        }
      }
      const key = `${run.info.id}\u0000${id}`;
      let record = records.get(key);
      if (record === undefined) {
        record = tx.openRecord(run.info.id, sample, k);
        records.set(key, record);
      }
      const g = record.g;
      const off = i * k;
      for (let d = 0; d < k; d++) g[d] = (g[d] as number) + lr * (sub.sketches[off + d] as number);
      touched.add(id);
    }
    run.commits.set(sub.rank, sub.seq);
    tx.putCommit(run.info.id, sub.rank, sub.seq);
    run.batches++;
    run.sketches += n;
    if (sub.step > run.lastStep) run.lastStep = sub.step;
  }

  /** Qᵀ [k × m] of a query set, cached. */
  private queryMatrix(qs: QuerySetRecord, k: number): Float32Array {
    let t = this.transposed.get(qs);
    if (t === undefined) {
      t = transpose(qs.sketches, qs.ids.length, k);
      this.transposed.set(qs, t);
    }
    return t;
  }

  /**
   * Scores a new query against every stored G(z) of a run: `<G(z), q̂>` with q normalised per
   * the run's score mode. Returns the best `limit`, best first, exactly: the int8 mirror gives
   * every row an approximate score with an error bound, and only rows whose bound reaches the
   * top are rescored from the float32 G(z) in the store.
   */
  async attribute(run: RunState, query: Float32Array, limit: number): Promise<Array<{ id: string; score: number }>> {
    const k = run.info.dim;
    const q = Float32Array.from(query);
    if (run.info.scoreMode === 'cosine') normalizeRows(q, 1, k);
    let qL1 = 0;
    for (let d = 0; d < k; d++) qL1 += Math.abs(q[d] as number);
    // Rounding each int8 value moves it by at most scale/2; float32 accumulation adds a little.
    const boundPerScale = qL1 * (0.5 + 127 * k * 1.2e-7);
    const mirror = run.mirror;
    const n = mirror.size;
    const approx = new Float32Array(n);
    const bound = new Float32Array(n);
    const ids: string[] = new Array<string>(n);
    const lower = new TopK(limit);
    for (const block of mirror.blocksView()) {
      // Small sub-chunks keep the kernel's float32 copy of the int8 rows in cache (2.5× faster
      // than whole 16 Ki-row blocks at k = 512, measured).
      const c = new Float32Array(block.count);
      for (let at = 0; at < block.count; at += SCAN_CHUNK_ROWS) {
        const rows = Math.min(SCAN_CHUNK_ROWS, block.count - at);
        c.set(await this.kernel.multiplyInt8(block.rows.subarray(at * k, (at + rows) * k), rows, k, q, 1), at);
      }
      for (let i = 0; i < block.count; i++) {
        const slot = block.first + i;
        const scale = block.scales[i] as number;
        const a = (c[i] as number) * scale;
        const e = scale * boundPerScale;
        approx[slot] = a;
        bound[slot] = e;
        ids[slot] = block.ids[i] as string;
        lower.offer(ids[slot], a - e);
      }
    }
    const threshold = lower.full ? lower.min : -Infinity;
    const top = new TopK(limit);
    const g = new Float32Array(k);
    for (let slot = 0; slot < n; slot++) {
      if ((approx[slot] as number) + (bound[slot] as number) < threshold) continue;
      const id = ids[slot] as string;
      if (this.store.readEmbedding(run.info.id, id, g) === undefined) continue;
      let score = 0;
      for (let d = 0; d < k; d++) score += (g[d] as number) * (q[d] as number);
      top.offer(id, score);
    }
    this.lastScan = { rows: n, rescored: top.offered };
    return top.sorted();
  }

  /** Rows scanned and rows rescored exactly by the last {@link attribute} call. */
  lastScan = { rows: 0, rescored: 0 };
}

/** Rows per kernel call in `/attribute` scans of the int8 mirror. */
const SCAN_CHUNK_ROWS = 2048;

/** Query set in force at `step` among the committed history and this group's pending ones. */
function querySetAt(run: RunState, pending: readonly QuerySetRecord[], step: number): QuerySetRecord | undefined {
  let best = run.querySetAt(step);
  for (const qs of pending) {
    if (qs.step > step) continue;
    if (best === undefined || qs.step > best.step || (qs.step === best.step && qs.version > best.version)) best = qs;
  }
  return best;
}

/** Keeps the `limit` largest scores (a bounded min-heap). */
class TopK {
  private readonly ids: string[] = [];
  private readonly scores: number[] = [];
  private readonly limit: number;
  /** Values offered so far. */
  offered = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** True once `limit` values are held. */
  get full(): boolean {
    return this.ids.length >= this.limit;
  }

  /** The smallest value held (the current cut). */
  get min(): number {
    return this.scores[0] ?? -Infinity;
  }

  offer(id: string, score: number): void {
    this.offered++;
    if (this.limit <= 0) return;
    if (this.ids.length < this.limit) {
      this.ids.push(id);
      this.scores.push(score);
      this.up(this.ids.length - 1);
    } else if (score > (this.scores[0] as number)) {
      this.ids[0] = id;
      this.scores[0] = score;
      this.down(0);
    }
  }

  sorted(): Array<{ id: string; score: number }> {
    const out = this.ids.map((id, i) => ({ id, score: this.scores[i] as number }));
    return out.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : 1));
  }

  private swap(a: number, b: number): void {
    [this.ids[a], this.ids[b]] = [this.ids[b] as string, this.ids[a] as string];
    [this.scores[a], this.scores[b]] = [this.scores[b] as number, this.scores[a] as number];
  }

  private up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((this.scores[parent] as number) <= (this.scores[i] as number)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    const n = this.ids.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let smallest = i;
      if (l < n && (this.scores[l] as number) < (this.scores[smallest] as number)) smallest = l;
      if (r < n && (this.scores[r] as number) < (this.scores[smallest] as number)) smallest = r;
      if (smallest === i) return;
      this.swap(i, smallest);
      i = smallest;
    }
  }
}

export type { ScoreMode };
