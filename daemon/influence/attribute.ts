/**
 * The engine's read path (docs/method.md, "Attributing a new query"): a new query scored against
 * every stored G(z) of a run. The int8 mirror (daemon/store/embedding-mirror.ts) gives every row an
 * approximate score with an error bound in one kernel pass; only the rows whose bound reaches the
 * top are rescored exactly from the float32 G(z) in the store. Nothing here writes: the write path
 * (engine.ts, prepare.ts, apply.ts) is the only writer.
 */
import { normalizeRows } from '../shared/index.js';
import type { PendingScores, RunState, Store } from '../store/index.js';
import type { MatMulKernel } from './matmul-kernel.js';
import { TopK } from './top-k.js';

/** What a scan reads: the store's mirror and records, the kernel, and the chunk size. */
export interface AttributeDeps {
  readonly store: Store;
  readonly kernel: MatMulKernel;
  /** Rows of the int8 mirror per kernel call. */
  readonly scanChunkSamples: number;
}

/** Every mirror row's approximate score and its error bound, by mirror slot. */
interface Approximate {
  readonly approx: Float32Array;
  readonly bound: Float32Array;
  readonly ids: string[];
}

/**
 * Scores a new query against every stored G(z) of a run: `<G(z), q̂>` with q normalised per
 * the run's score mode. Returns the best `limit`, best first, exactly.
 */
export async function attribute(
  deps: AttributeDeps,
  run: RunState,
  query: Float32Array,
  limit: number,
): Promise<Array<{ id: string; score: number }>> {
  const k = run.info.dim;
  const q = Float32Array.from(query);
  if (run.info.scoreMode === 'cosine') normalizeRows(q, 1, k);
  // The changes ingest has not folded into records yet, scored before the mirror is sized
  // (a sample new since the last flush gets its zero row here).
  const pending = deps.store.pendingScores(run, q);
  const rows = await scanMirror(deps, run, q);
  addPending(pending, rows.approx, rows.bound);
  return rescore(deps.store, run, q, rows, limit);
}

/** The int8 pass: each mirror row's approximate score and the bound on its rounding error. */
async function scanMirror(deps: AttributeDeps, run: RunState, q: Float32Array): Promise<Approximate> {
  const k = run.info.dim;
  let qL1 = 0;
  for (let d = 0; d < k; d++) qL1 += Math.abs(q[d] as number);
  // Rounding each int8 value moves it by at most scale/2; float32 accumulation adds a little.
  const boundPerScale = qL1 * (0.5 + 127 * k * 1.2e-7);
  const mirror = run.mirror;
  const n = mirror.size;
  const approx = new Float32Array(n);
  const bound = new Float32Array(n);
  const ids: string[] = new Array<string>(n);
  for (const block of mirror.blocksView()) {
    // Small sub-chunks keep the kernel's float32 copy of the int8 rows in cache (2.5× faster
    // than whole 16 Ki-row blocks at k = 512, measured).
    const c = new Float32Array(block.count);
    const chunk = deps.scanChunkSamples;
    // A block's chunks queued together run back to back in one turn of the event loop: between
    // turns the batches and flush work waiting get the main thread, and under ingest a turn per
    // chunk let them in before every chunk.
    const parts: Array<Promise<Float32Array>> = [];
    for (let at = 0; at < block.count; at += chunk) {
      const rows = Math.min(chunk, block.count - at);
      parts.push(deps.kernel.multiplyInt8(block.rows.subarray(at * k, (at + rows) * k), rows, k, q, 1));
    }
    (await Promise.all(parts)).forEach((part, j) => c.set(part, j * chunk));
    for (let i = 0; i < block.count; i++) {
      const slot = block.first + i;
      const scale = block.scales[i] as number;
      approx[slot] = (c[i] as number) * scale;
      bound[slot] = scale * boundPerScale;
      ids[slot] = block.ids[i] as string;
    }
  }
  return { approx, bound, ids };
}

/**
 * The exact pass: the cut is the `limit`-th best lower bound, and every row whose upper bound
 * reaches it is rescored from its float32 G(z).
 */
function rescore(store: Store, run: RunState, q: Float32Array, rows: Approximate, limit: number): Array<{ id: string; score: number }> {
  const { approx, bound, ids } = rows;
  const k = run.info.dim;
  const n = approx.length;
  const lower = new TopK(limit);
  for (let slot = 0; slot < n; slot++) lower.offer(ids[slot] as string, (approx[slot] as number) - (bound[slot] as number));
  const threshold = lower.full ? lower.min : -Infinity;
  const top = new TopK(limit);
  const gz = new Float32Array(k);
  for (let slot = 0; slot < n; slot++) {
    if ((approx[slot] as number) + (bound[slot] as number) < threshold) continue;
    const id = ids[slot] as string;
    if (store.readEmbedding(run.info.id, id, gz) === undefined) continue;
    let score = 0;
    for (let d = 0; d < k; d++) score += (gz[d] as number) * (q[d] as number);
    top.offer(id, score);
  }
  return top.sorted();
}

/**
 * Adds each pending change's `<change, q>` to its row's approximate score, with the rounding that
 * adds (the float64 sum's, the float32 score's, and the float32 G(z) = record + change the
 * rescoring reads). A row a flush rebuilt while the scan ran may hold the change already: it
 * gets no bound, and so is rescored.
 */
function addPending(p: PendingScores, approx: Float32Array, bound: Float32Array): void {
  for (let i = 0; i < p.count; i++) {
    const slot = p.slots[i] as number;
    if (slot >= approx.length) continue;
    if (p.folded(i)) {
      bound[slot] = Infinity;
      continue;
    }
    const a = (approx[slot] as number) + (p.dots[i] as number);
    approx[slot] = a;
    // The row's bound b is at least scale · ‖q‖₁ / 2 and |record[d]| ≤ 127 · scale, so
    // Σ |record[d] · q[d]| ≤ 254 b: rounding record + change to float32 moves the score by at
    // most 6e-8 of that plus Σ |change[d] · q[d]|.
    const b = bound[slot] as number;
    bound[slot] = b + 2e-5 * b + 2.4e-7 * ((p.abs[i] as number) + Math.abs(a));
  }
}
