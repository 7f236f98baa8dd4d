/**
 * An int8 copy of a run's influence embeddings G(z), kept in memory for fast `/attribute` scans.
 *
 * Each row is quantised symmetrically with its own scale `s = max|G| / 127`, so for any query q
 * the approximate score `s · <q8, q>` is within `(s / 2) · ‖q‖₁` of the exact `<G, q>`. The scan
 * uses that bound to pick the few rows whose exact score could reach the top and rescores those
 * from the float32 G(z) in the store: the ranking it returns is exact. At k = 512 a row costs 516
 * bytes, a quarter of the float32 rows, which stay in the store.
 *
 * Rows live in fixed-size blocks (no reallocation as a run grows). A sample's slot is assigned
 * once ({@link EmbeddingMirror.add}) and kept on the sample (`SampleState.mirrorSlot`), not in a
 * map by id here: without that map the daemon holds 12–31 MiB less at a million samples
 * (bench/memory.ts, side by side), and a flushed record needs no hash lookup. Slots are never reused (deleting a run drops its whole mirror).
 */

/** Rows per block: 16 Ki rows × k bytes (8 MiB at k = 512). */
export const MIRROR_BLOCK_ROWS = 16384;

export class EmbeddingMirror {
  readonly dim: number;
  private readonly blocks: Int8Array[] = [];
  private readonly scaleBlocks: Float32Array[] = [];
  private readonly ids: string[] = [];

  constructor(dim: number) {
    this.dim = dim;
  }

  /** Rows held. */
  get size(): number {
    return this.ids.length;
  }

  /** Bytes held by the rows and scales. */
  get bytes(): number {
    return this.blocks.length * MIRROR_BLOCK_ROWS * (this.dim + 4);
  }

  /** A new slot for sample `id` (a zero row until set): call once per sample, and keep it. */
  add(id: string): number {
    const slot = this.ids.length;
    this.ids.push(id);
    if (slot >= this.blocks.length * MIRROR_BLOCK_ROWS) {
      this.blocks.push(new Int8Array(MIRROR_BLOCK_ROWS * this.dim));
      this.scaleBlocks.push(new Float32Array(MIRROR_BLOCK_ROWS));
    }
    return slot;
  }

  /**
   * Stores a row quantised elsewhere (the delta pool's SIMD kernel, the same rounding as
   * {@link EmbeddingMirror.set}) in `slot`: `scale` = max|G| / 127, `q` the k int8 values (none when the scale is 0).
   */
  setQuantized(slot: number, scale: number, q: Int8Array | undefined): void {
    this.check(slot);
    const block = this.blocks[Math.floor(slot / MIRROR_BLOCK_ROWS)] as Int8Array;
    const row = slot % MIRROR_BLOCK_ROWS;
    (this.scaleBlocks[Math.floor(slot / MIRROR_BLOCK_ROWS)] as Float32Array)[row] = scale;
    if (q === undefined) block.fill(0, row * this.dim, (row + 1) * this.dim);
    else block.set(q, row * this.dim);
  }

  /** Quantises `g` into `slot`. */
  set(slot: number, g: Float32Array): void {
    this.check(slot);
    const block = this.blocks[Math.floor(slot / MIRROR_BLOCK_ROWS)] as Int8Array;
    const scales = this.scaleBlocks[Math.floor(slot / MIRROR_BLOCK_ROWS)] as Float32Array;
    const row = slot % MIRROR_BLOCK_ROWS;
    const k = this.dim;
    // max |g| in four running maxima: independent comparisons pipeline, about 40 % faster a row at k = 512 than one.
    let m0 = 0;
    let m1 = 0;
    let m2 = 0;
    let m3 = 0;
    let d = 0;
    for (; d + 3 < k; d += 4) {
      const a0 = Math.abs(g[d] as number);
      const a1 = Math.abs(g[d + 1] as number);
      const a2 = Math.abs(g[d + 2] as number);
      const a3 = Math.abs(g[d + 3] as number);
      if (a0 > m0) m0 = a0;
      if (a1 > m1) m1 = a1;
      if (a2 > m2) m2 = a2;
      if (a3 > m3) m3 = a3;
    }
    for (; d < k; d++) {
      const a = Math.abs(g[d] as number);
      if (a > m0) m0 = a;
    }
    const scale = Math.max(m0, m1, m2, m3) / 127;
    scales[row] = scale;
    const off = row * k;
    if (scale === 0) {
      block.fill(0, off, off + k);
      return;
    }
    const inv = 1 / scale;
    // Round half up, as Math.round does, but without it: (x + 128.5) | 0 is floor(x + 128.5) for
    // x in [-127, 127], an integer store V8 compiles to a few instructions, 7× faster than
    // storing Math.round's double (0.7 vs 4.8 µs a row at k = 512, measured).
    for (let j = 0; j < k; j++) block[off + j] = (((g[j] as number) * inv + 128.5) | 0) - 128;
  }

  private check(slot: number): void {
    if (!(slot >= 0 && slot < this.ids.length)) throw new RangeError(`mirror slot ${slot} not assigned (${this.ids.length} held)`);
  }

  /**
   * The rows block by block: `rows` is [count × dim] int8, `scales` [count], `ids` the sample
   * ids, `first` the slot of the first row. Views into the mirror: read them before the next
   * commit.
   */
  *blocksView(): Generator<{ first: number; count: number; rows: Int8Array; scales: Float32Array; ids: readonly string[] }> {
    for (let b = 0; b < this.blocks.length; b++) {
      const first = b * MIRROR_BLOCK_ROWS;
      const count = Math.min(MIRROR_BLOCK_ROWS, this.ids.length - first);
      if (count <= 0) return;
      yield {
        first,
        count,
        rows: (this.blocks[b] as Int8Array).subarray(0, count * this.dim),
        scales: (this.scaleBlocks[b] as Float32Array).subarray(0, count),
        ids: this.ids.slice(first, first + count),
      };
    }
  }
}
