/** The top-k of the read path: the best `limit` scores of a scan, kept as it runs. */

/** Keeps the `limit` largest scores (a bounded min-heap). */
export class TopK {
  private readonly ids: string[] = [];
  private readonly scores: number[] = [];
  private readonly limit: number;

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
