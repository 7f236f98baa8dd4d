/**
 * Rows of pending G(z) changes for one run: what ingest added to a sample's embedding since its
 * record was last written. Rows live in fixed blocks with a free list, so marking a sample dirty
 * allocates nothing; a released row is zeroed for its next owner.
 *
 * The blocks are WebAssembly memory, so that the apply's `row += lr · sketch` runs as a SIMD
 * kernel (delta-kernel.wat): 0.54 µs a row at k = 512 against 1.5–2.4 µs for the JavaScript loop,
 * with bit-identical results. A batch's sketches are copied into the memory once per batch
 * ({@link DeltaPool.stage}); each row's update is then one kernel call.
 *
 * A wasm32 memory holds at most 4 GiB, so the rows are split over shards of at most 2 GiB of rows
 * each (one shard unless `maxDirtySamples · 4k` exceeds that); a batch is copied into each shard
 * it updates a row of.
 */
import { DELTA_KERNEL_WASM } from './delta-kernel.js';

const kernel = new WebAssembly.Module(Buffer.from(DELTA_KERNEL_WASM, 'base64'));

const PAGE_BYTES = 65536;
/** Bytes per block of rows (8 MiB; 4,096 rows at k = 512). */
const BLOCK_BYTES = 8 * 1024 * 1024;
/** Most bytes of rows per shard; staging areas come on top. */
const SHARD_ROW_BYTES = 2 * 1024 ** 3;
/** A batch larger than this (as float32) is applied by the JavaScript loop instead of staged. */
const MAX_STAGE_BYTES = 256 * 1024 * 1024;

interface Kernels {
  axpy(dst: number, src: number, n: number, a: number): void;
  fold(dst: number, delta: number, n: number): number;
  maxabs(src: number, n: number): number;
  quantize(src: number, q: number, n: number, inv: number): void;
  dot(a: number, b: number, n: number, out: number): void;
}

interface Shard {
  readonly dim: number;
  readonly memory: WebAssembly.Memory;
  readonly kernels: Kernels;
  /** Float32 view over the whole memory; replaced after every grow (which detaches it). */
  heap: Float32Array;
  /** A row of k floats and one of k int8 for folding a record (byte offsets), and views of them. */
  readonly scratchAt: number;
  readonly quantizedAt: number;
  scratch: Float32Array;
  /** The scratch row's bytes (a record's G(z) is read straight into it). */
  scratchBytes: Uint8Array;
  quantized: Int8Array;
  /** Bytes in use (blocks and staging areas, bump-allocated). */
  top: number;
  /** Byte offset of each block. */
  readonly blocks: number[];
  /** Byte offset and capacity of the staging area (-1: none yet). */
  stageAt: number;
  stageBytes: number;
  /** The staging area holds this batch. */
  staged: number;
  /** Byte offset of the query row and of the two float64s {@link DeltaPool.dot} writes (-1: none yet), and a view over the whole memory. */
  queryAt: number;
  dotAt: number;
  f64: Float64Array;
}

export interface DeltaPoolOptions {
  /** Bytes per block of rows, most bytes of rows per shard, largest batch staged (tests use small ones). */
  blockBytes?: number;
  shardRowBytes?: number;
  maxStageBytes?: number;
}

export class DeltaPool {
  readonly dim: number;
  private readonly blockRows: number;
  private readonly shardRows: number;
  private readonly maxStageBytes: number;
  private readonly shards: Shard[] = [];
  private readonly free: number[] = [];
  private next = 0;
  /** The batch of the last {@link DeltaPool.stage}, and a number that names it. */
  private batch: Float32Array | undefined;
  private batchRows = 0;
  private batchId = 0;

  constructor(dim: number, options: DeltaPoolOptions = {}) {
    this.dim = dim;
    this.blockRows = Math.max(1, Math.floor((options.blockBytes ?? BLOCK_BYTES) / (4 * dim)));
    const blocks = Math.max(1, Math.floor((options.shardRowBytes ?? SHARD_ROW_BYTES) / (this.blockRows * 4 * dim)));
    this.shardRows = blocks * this.blockRows;
    this.maxStageBytes = options.maxStageBytes ?? MAX_STAGE_BYTES;
  }

  /** A zeroed row. */
  alloc(): number {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    const row = this.next++;
    const local = row % this.shardRows;
    if (Math.floor(row / this.shardRows) >= this.shards.length) this.shards.push(newShard(this.dim));
    if (local % this.blockRows === 0) {
      const shard = this.shards[this.shards.length - 1] as Shard;
      shard.blocks.push(reserve(shard, this.blockRows * 4 * this.dim));
    }
    return row;
  }

  /** Zeroes the row and returns it to the pool. */
  release(row: number): void {
    const off = this.offset(row);
    this.block(row).fill(0, off, off + this.dim);
    this.free.push(row);
  }

  /** The array holding `row`; its values start at {@link DeltaPool.offset}. Valid until the next alloc or add. */
  block(row: number): Float32Array {
    return this.shard(row).heap;
  }

  offset(row: number): number {
    const local = row % this.shardRows;
    return (this.shard(row).blocks[Math.floor(local / this.blockRows)] as number) / 4 + (local % this.blockRows) * this.dim;
  }

  /** out[d] += row[d]. */
  addTo(row: number, out: Float32Array): void {
    const b = this.block(row);
    const off = this.offset(row);
    const k = Math.min(this.dim, out.length);
    for (let d = 0; d < k; d++) out[d] = (out[d] as number) + (b[off + d] as number);
  }

  /** Names `sketches` ([rows × dim] float32) as the batch {@link DeltaPool.add} reads from. */
  stage(sketches: Float32Array, rows: number): void {
    this.batch = sketches;
    this.batchRows = rows;
    this.batchId++;
  }

  /** row[d] += lr · sketch[d], `sketch` being row `i` of the staged batch. */
  add(row: number, i: number, lr: number): void {
    const k = this.dim;
    const shard = this.shard(row);
    const batch = this.batch as Float32Array;
    const bytes = this.batchRows * k * 4;
    if (bytes > this.maxStageBytes) {
      const heap = shard.heap;
      const at = this.offset(row);
      const off = i * k;
      for (let d = 0; d < k; d++) heap[at + d] = (heap[at + d] as number) + lr * (batch[off + d] as number);
      return;
    }
    if (shard.staged !== this.batchId) {
      if (shard.stageBytes < bytes) {
        // Room for twice the batch: a stream's batches seldom grow, and never without bound.
        const room = Math.min(2 * bytes, this.maxStageBytes);
        shard.stageAt = reserve(shard, room);
        shard.stageBytes = room;
      }
      shard.heap.set(batch.subarray(0, this.batchRows * k), shard.stageAt / 4);
      shard.staged = this.batchId;
    }
    const offset = this.offset(row);
    shard.kernels.axpy(offset * 4, shard.stageAt + i * k * 4, k, lr);
  }

  /**
   * The k-float scratch row of `row`'s shard (shard 0 for -1, no row), where a record's G(z) is
   * folded: put the record's base G(z) there, then {@link DeltaPool.fold}. Valid until the next
   * alloc or add.
   */
  scratch(row: number): Float32Array {
    return this.shardOf(row).scratch;
  }

  /** The bytes of {@link DeltaPool.scratch}'s row (the same memory). */
  scratchBytes(row: number): Uint8Array {
    return this.shardOf(row).scratchBytes;
  }

  /**
   * scratch += the row's pending change, the row zeroed and released (-1: no row, scratch as is).
   * Returns max |scratch|. The same floats as {@link DeltaPool.addTo} then {@link DeltaPool.release}.
   */
  fold(row: number): number {
    const shard = this.shardOf(row);
    if (row < 0) return shard.kernels.maxabs(shard.scratchAt, this.dim);
    const max = shard.kernels.fold(shard.scratchAt, this.offset(row) * 4, this.dim);
    this.free.push(row);
    return max;
  }

  /** Puts `q` (k floats) in every shard's memory for {@link DeltaPool.dot}. */
  setQuery(q: Float32Array): void {
    for (const shard of this.shards) {
      if (shard.queryAt < 0) {
        shard.queryAt = reserve(shard, 4 * this.dim);
        shard.dotAt = reserve(shard, 16);
      }
      shard.heap.set(q.subarray(0, this.dim), shard.queryAt / 4);
    }
  }

  /**
   * `<row, q>` (q from {@link DeltaPool.setQuery}) summed in float64 over exact float64 products,
   * and `Σ |row[d] · q[d]|` (what bounds that sum's rounding), into out[0] and out[1].
   */
  dot(row: number, out: Float64Array): void {
    const shard = this.shard(row);
    shard.kernels.dot(this.offset(row) * 4, shard.queryAt, this.dim, shard.dotAt);
    out[0] = shard.f64[shard.dotAt / 8] as number;
    out[1] = shard.f64[shard.dotAt / 8 + 1] as number;
  }

  /** The scratch row of `row`'s shard quantised to int8 with 1 / scale `inv` (embedding-mirror.ts). A view, valid until the next call. */
  quantize(row: number, inv: number): Int8Array {
    const shard = this.shardOf(row);
    shard.kernels.quantize(shard.scratchAt, shard.quantizedAt, this.dim, inv);
    return shard.quantized;
  }

  private shard(row: number): Shard {
    return this.shards[Math.floor(row / this.shardRows)] as Shard;
  }

  private shardOf(row: number): Shard {
    if (row >= 0) return this.shard(row);
    if (this.shards.length === 0) this.shards.push(newShard(this.dim));
    return this.shards[0] as Shard;
  }
}

function newShard(dim: number): Shard {
  const memory = new WebAssembly.Memory({ initial: 0 });
  const instance = new WebAssembly.Instance(kernel, { env: { memory } });
  const scratchAt = 0;
  const quantizedAt = align16(4 * dim);
  const shard: Shard = {
    dim,
    memory,
    kernels: instance.exports as unknown as Kernels,
    heap: new Float32Array(0),
    scratchAt,
    quantizedAt,
    scratch: new Float32Array(0),
    scratchBytes: new Uint8Array(0),
    quantized: new Int8Array(0),
    top: 0,
    blocks: [],
    stageAt: -1,
    stageBytes: 0,
    staged: 0,
    queryAt: -1,
    dotAt: -1,
    f64: new Float64Array(0),
  };
  reserve(shard, quantizedAt + dim);
  return shard;
}

function align16(bytes: number): number {
  return Math.ceil(bytes / 16) * 16;
}

/** Bump-allocates `bytes` (16-byte aligned) in the shard's memory, growing it; returns the offset. */
function reserve(shard: Shard, bytes: number): number {
  const at = shard.top;
  shard.top = at + align16(bytes);
  const pages = Math.ceil(shard.top / PAGE_BYTES) - shard.memory.buffer.byteLength / PAGE_BYTES;
  if (pages > 0 || shard.heap.length === 0) {
    if (pages > 0) shard.memory.grow(pages);
    // Growing detaches every view of the memory: make them anew.
    const buffer = shard.memory.buffer;
    shard.heap = new Float32Array(buffer);
    shard.f64 = new Float64Array(buffer);
    shard.scratch = new Float32Array(buffer, shard.scratchAt, shard.dim);
    shard.scratchBytes = new Uint8Array(buffer, shard.scratchAt, 4 * shard.dim);
    shard.quantized = new Int8Array(buffer, shard.quantizedAt, shard.dim);
  }
  return at;
}
