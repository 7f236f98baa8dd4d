/**
 * Reads the daemon's Ack-path trace (`MOTIVE_TRACE_FILE`, `trace.ts`) and says where
 * the Acks' time went: for the median Acks and for the slowest 1 %, the mean time of each step
 * between reading a batch off its stream and sending its Ack, and how much of the Ack's span the
 * main thread spent on the flusher, on weight recomputes and on garbage collection, and how much
 * of it a flush chunk (its records built, then written and synced) was in flight.
 */
import { readFileSync } from 'node:fs';

/**
 * The steps of one Ack, in order, in ms. `send`: from the group's commit being durable to the Ack
 * written to its stream (the group's apply comes after the Acks it holds).
 */
export const ACK_STEPS = ['decode', 'wait', 'score', 'queued', 'commit', 'send'] as const;
export type AckStep = (typeof ACK_STEPS)[number];
/** What else ran during an Ack, in ms of its span. */
export const OVERLAPS = ['flusher', 'flush writes', 'recompute', 'gc'] as const;
export type Overlap = (typeof OVERLAPS)[number];

export interface AckGroup {
  readonly name: string;
  readonly acks: number;
  /** Mean daemon-side Ack time: read off the stream → Ack sent. */
  readonly ackMs: number;
  readonly steps: Record<AckStep, number>;
  readonly overlap: Record<Overlap, number>;
}

export interface AckTraceSummary {
  readonly acks: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly groups: readonly AckGroup[];
}

type Span = readonly [number, number];

/** Total length of `spans` (sorted by start) inside [from, to]. */
export function overlapMs(spans: readonly Span[], from: number, to: number): number {
  let total = 0;
  for (const [s, e] of spans) {
    if (s >= to) break;
    const lo = Math.max(s, from);
    const hi = Math.min(e, to);
    if (hi > lo) total += hi - lo;
  }
  return total;
}

/**
 * Summarises a trace. Acks read off the stream in the first `warmupMs` after the first one are
 * left out.
 */
export function summariseAckTrace(text: string, warmupMs: number): AckTraceSummary {
  const acks = new Map<string, number[]>();
  const batches = new Map<string, number[]>();
  const spans: Record<Overlap, Span[]> = { flusher: [], 'flush writes': [], recompute: [], gc: [] };
  const kinds: Record<string, Overlap> = { flush: 'flusher', 'flush-write': 'flush writes', recompute: 'recompute', gc: 'gc' };
  for (const line of text.split('\n')) {
    const [kind, ...rest] = line.split(' ');
    const f = rest.map(Number);
    if (kind === 'ack') acks.set(`${f[0]}:${f[1]}`, f.slice(2));
    else if (kind === 'batch') batches.set(`${f[0]}:${f[1]}`, f.slice(2));
    else if (kind !== undefined && kind in kinds) spans[kinds[kind] as Overlap].push([f[0] as number, f[1] as number]);
  }
  for (const list of Object.values(spans)) list.sort((a, b) => a[0] - b[0]);
  let first = Infinity;
  for (const [received] of acks.values()) first = Math.min(first, received as number);
  const rows: Array<{ ackMs: number; steps: number[]; from: number; to: number }> = [];
  for (const [key, [received, submitted, acked] = []] of acks) {
    const b = batches.get(key);
    if (b === undefined || received === undefined || submitted === undefined || acked === undefined) continue;
    if (received < first + warmupMs) continue;
    const [, taken, prepared, writing, durable] = b as [number, number, number, number, number];
    rows.push({
      ackMs: acked - received,
      steps: [submitted - received, taken - submitted, prepared - taken, writing - prepared, durable - writing, acked - durable],
      from: received,
      to: acked,
    });
  }
  rows.sort((a, b) => a.ackMs - b.ackMs);
  const n = rows.length;
  const group = (name: string, part: typeof rows): AckGroup => {
    const mean = (f: (r: (typeof rows)[number]) => number): number => part.reduce((t, r) => t + f(r), 0) / Math.max(1, part.length);
    return {
      name,
      acks: part.length,
      ackMs: mean((r) => r.ackMs),
      steps: Object.fromEntries(ACK_STEPS.map((s, i) => [s, mean((r) => r.steps[i] as number)])) as Record<AckStep, number>,
      overlap: Object.fromEntries(OVERLAPS.map((o) => [o, mean((r) => overlapMs(spans[o], r.from, r.to))])) as Record<Overlap, number>,
    };
  };
  const slow = Math.max(1, Math.ceil(n / 100));
  return {
    acks: n,
    p50Ms: rows[Math.floor((n - 1) / 2)]?.ackMs ?? NaN,
    p99Ms: rows[Math.min(n - 1, Math.floor(0.99 * (n - 1)))]?.ackMs ?? NaN,
    groups: [group('median (p40–p60)', rows.slice(Math.floor(0.4 * n), Math.ceil(0.6 * n))), group('slowest 1 %', rows.slice(n - slow))],
  };
}

/** Column headers of {@link summaryRows}. */
export const SUMMARY_HEADERS = ['Acks', 'n', 'Ack ms', ...ACK_STEPS.map((s) => `${s} ms`), ...OVERLAPS.map((o) => `${o} ms`)];

/** One table row per group of a summary (ms to 0.1), under {@link SUMMARY_HEADERS}. */
export function summaryRows(summary: AckTraceSummary): Array<Array<string | number>> {
  return summary.groups.map((g) => [
    g.name,
    g.acks,
    g.ackMs.toFixed(1),
    ...ACK_STEPS.map((s) => g.steps[s].toFixed(1)),
    ...OVERLAPS.map((o) => g.overlap[o].toFixed(1)),
  ]);
}

/** {@link summariseAckTrace} of a trace file. */
export function readAckTrace(file: string, warmupMs: number): AckTraceSummary {
  return summariseAckTrace(readFileSync(file, 'utf8'), warmupMs);
}
