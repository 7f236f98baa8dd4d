/** A metric computed whole at scrape time, for prom-client's registry. */

export interface SnapshotValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/**
 * A histogram or summary whose whole state is computed at scrape time (the distribution of
 * current weights is a snapshot, not a stream of observations, so prom-client's accumulating
 * Histogram does not fit). Speaks prom-client's metric-object protocol.
 */
export class SnapshotMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'histogram' | 'summary';
  readonly aggregator = 'sum';
  private readonly compute: () => SnapshotValue[];

  constructor(name: string, help: string, type: 'histogram' | 'summary', compute: () => SnapshotValue[]) {
    this.name = name;
    this.help = help;
    this.type = type;
    this.compute = compute;
  }

  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: SnapshotValue[] }> {
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.compute() });
  }

  reset(): void {
    // Nothing accumulates: every scrape recomputes.
  }

  collect(): void {
    // Values come from get().
  }
}
