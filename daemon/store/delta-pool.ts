/**
 * Rows of pending G(z) changes for one run: what ingest added to a sample's embedding since its
 * record was last written. Rows live in fixed blocks with a free list, so marking a sample dirty
 * allocates nothing; a released row is zeroed for its next owner.
 */

/** Rows per block (8 MiB at k = 512). */
const BLOCK_ROWS = 4096;

export class DeltaPool {
  readonly dim: number;
  private readonly blocks: Float32Array[] = [];
  private readonly free: number[] = [];
  private next = 0;

  constructor(dim: number) {
    this.dim = dim;
  }

  /** A zeroed row. */
  alloc(): number {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    const row = this.next++;
    if (row >= this.blocks.length * BLOCK_ROWS) this.blocks.push(new Float32Array(BLOCK_ROWS * this.dim));
    return row;
  }

  /** Zeroes the row and returns it to the pool. */
  release(row: number): void {
    const off = this.offset(row);
    this.block(row).fill(0, off, off + this.dim);
    this.free.push(row);
  }

  /** The block holding `row`; its values start at {@link DeltaPool.offset}. */
  block(row: number): Float32Array {
    return this.blocks[Math.floor(row / BLOCK_ROWS)] as Float32Array;
  }

  offset(row: number): number {
    return (row % BLOCK_ROWS) * this.dim;
  }

  /** out[d] += row[d]. */
  addTo(row: number, out: Float32Array): void {
    const b = this.block(row);
    const off = this.offset(row);
    const k = Math.min(this.dim, out.length);
    for (let d = 0; d < k; d++) out[d] = (out[d] as number) + (b[off + d] as number);
  }
}
