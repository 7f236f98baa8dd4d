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
  dequantAdd(base: number, scale: number, delta: number, n: number, dst: number): number;
  dots(rows: number, count: number, b: number, n: number, out: number): void;
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
  /** Byte offset of each block's base rows ({@link DeltaPool.setBase}; -1: none yet). */
  readonly bases: number[];
  /** Int8 view over the whole memory. */
  i8: Int8Array;
  /** Byte offset of the query row {@link DeltaPool.dots} reads (-1: none yet). */
  queryAt: number;
  /** Byte offset and capacity (rows) of the area {@link DeltaPool.dots} lists rows and writes sums in (-1: none yet). */
  dotsAt: number;
  dotsRows: number;
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
  /** Per row: {@link DeltaPool.stamp}, and the scale of its base. */
  private stamps = new Uint32Array(0);
  private baseScales = new Float32Array(0);
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

  /** Rows handed out so far (free or not): every row number is below it. */
  get rows(): number {
    return this.next;
  }

  /** A zeroed row. */
  alloc(): number {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    const row = this.next++;
    if (row >= this.stamps.length) {
      const grown = new Uint32Array(Math.max(1024, 2 * this.stamps.length));
      grown.set(this.stamps);
      this.stamps = grown;
      const scales = new Float32Array(grown.length);
      scales.set(this.baseScales);
      this.baseScales = scales;
    }
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
    this.stamps[row] = (this.stamps[row] as number) + 1;
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

  /**
   * How many times `row` has been added to ({@link DeltaPool.add}) since the pool was made, across
   * owners (a row freed and taken again keeps counting): a scan's mirror refresh compares it with
   * the count it requantised the row at (mirror-refresh.ts).
   */
  stamp(row: number): number {
    return this.stamps[row] as number;
  }

  /**
   * Keeps `q` (k int8 values, a record's int8 mirror row) and its `scale` as the base of `row`'s
   * change, for {@link DeltaPool.requantize}.
   */
  setBase(row: number, q: Int8Array, scale: number): void {
    // The offset first: reserving the block's base rows may grow the memory, detaching old views.
    const at = this.baseOffset(row);
    this.shard(row).i8.set(q.subarray(0, this.dim), at);
    this.baseScales[row] = scale;
  }

  /** The scale {@link DeltaPool.setBase} kept for `row`. */
  baseScale(row: number): number {
    return this.baseScales[row] as number;
  }

  /**
   * The base row times its scale plus the row's change, in float32, into the scratch row of the
   * row's shard; returns its max |·|. {@link DeltaPool.quantize} then gives its int8 row.
   */
  requantize(row: number): number {
    const shard = this.shard(row);
    return shard.kernels.dequantAdd(this.baseOffset(row), this.baseScales[row] as number, this.offset(row) * 4, this.dim, shard.scratchAt);
  }

  /** Byte offset of `row`'s base in its shard; the block's base rows are reserved on first use. */
  private baseOffset(row: number): number {
    const shard = this.shard(row);
    const local = row % this.shardRows;
    const block = Math.floor(local / this.blockRows);
    let at = shard.bases[block] ?? -1;
    if (at < 0) {
      at = reserve(shard, this.blockRows * this.dim);
      shard.bases[block] = at;
    }
    return at + (local % this.blockRows) * this.dim;
  }

  /** Puts `q` (k floats) in every shard's memory for {@link DeltaPool.dots}. */
  setQuery(q: Float32Array): void {
    for (const shard of this.shards) {
      if (shard.queryAt < 0) shard.queryAt = reserve(shard, 4 * this.dim);
      shard.heap.set(q.subarray(0, this.dim), shard.queryAt / 4);
    }
  }

  /**
   * `<row, q>` and `Σ |row[d] · q[d]|` (q from {@link DeltaPool.setQuery}) of `count` rows
   * (`rows[0..count)`, any shards) into `dots[j]` and `abs[j]`, summed in float32 (delta-kernel.wat,
   * `dots`): one kernel call per shard.
   */
  dots(rows: Int32Array, count: number, dots: Float64Array, abs: Float64Array): void {
    for (let si = 0; si < this.shards.length; si++) {
      const shard = this.shards[si] as Shard;
      const lo = si * this.shardRows;
      const hi = lo + this.shardRows;
      let mine = 0;
      for (let j = 0; j < count; j++) {
        const row = rows[j] as number;
        if (row >= lo && row < hi) mine++;
      }
      if (mine === 0) continue;
      if (shard.dotsRows < mine) {
        // The area is bump-allocated and never freed: at least double it each time, so the
        // shard holds at most twice the largest set it scored.
        const room = Math.max(mine, 2 * shard.dotsRows, 1024);
        shard.dotsAt = reserve(shard, align16(room * 4) + room * 16);
        shard.dotsRows = room;
      }
      const list = new Int32Array(shard.memory.buffer, shard.dotsAt, mine);
      const outAt = shard.dotsAt + align16(mine * 4);
      const which = mine === count ? undefined : new Int32Array(mine);
      let m = 0;
      for (let j = 0; j < count; j++) {
        const row = rows[j] as number;
        if (row < lo || row >= hi) continue;
        list[m] = this.offset(row) * 4;
        if (which !== undefined) which[m] = j;
        m++;
      }
      shard.kernels.dots(shard.dotsAt, mine, shard.queryAt, this.dim, outAt);
      const out = new Float64Array(shard.memory.buffer, outAt, 2 * mine);
      for (let i = 0; i < mine; i++) {
        const j = which === undefined ? i : (which[i] as number);
        dots[j] = out[2 * i] as number;
        abs[j] = out[2 * i + 1] as number;
      }
    }
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
    bases: [],
    i8: new Int8Array(0),
    queryAt: -1,
    dotsAt: -1,
    dotsRows: 0,
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
    shard.i8 = new Int8Array(buffer);
    shard.scratch = new Float32Array(buffer, shard.scratchAt, shard.dim);
    shard.scratchBytes = new Uint8Array(buffer, shard.scratchAt, 4 * shard.dim);
    shard.quantized = new Int8Array(buffer, shard.quantizedAt, shard.dim);
  }
  return at;
}
