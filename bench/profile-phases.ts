/**
 * The daemon's main-thread CPU by phase of the ingest path, from a `node --cpu-prof` profile: each
 * sample is charged to the innermost frame on its stack that belongs to a phase (so the delta
 * pool's kernels count under the apply when the apply calls them and under the flusher when it
 * does), garbage collection, idle and V8's own `(program)` as their own rows, the rest as `other`.
 * Divided by the sketches acknowledged in the window, each row is µs of main thread per sketch
 * (docs/performance.md, "The per-sketch budget").
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ProfileSpan } from './lib.js';

/** Phases in the order printed; a frame's url (or, for `ack`, its function) decides its phase. */
const PHASES: ReadonlyArray<{ readonly phase: string; readonly matches: (url: string, fn: string) => boolean }> = [
  // The Ack: the durable callback and the Ack's write to its stream (its serialisation and
  // HTTP/2 framing below it count as transport).
  {
    phase: 'ack',
    matches: (url, fn) =>
      (url.includes('daemon/influence/apply.ts') && fn === 'tellDurable') ||
      (url.includes('daemon/ingest/trainer-stream.ts') && fn === 'send'),
  },
  // Shared helpers (pending.ts, run-state.ts, history.ts, codec.ts, the delta pool, the segments'
  // reads) belong to no phase: they count under whichever phase called them.
  { phase: 'flusher (store write)', matches: (url) => /daemon\/store\/(flusher|manifest)\.ts/.test(url) },
  {
    phase: 'log commit',
    matches: (url) => /daemon\/store\/commit-log\.ts|daemon\/influence\/write-group\.ts|node_modules\/lmdb\//.test(url),
  },
  { phase: 'apply', matches: (url) => /daemon\/influence\/apply\.ts|daemon\/store\/(apply-batch|store)\.ts/.test(url) },
  { phase: 'weights', matches: (url) => /daemon\/weighting\/|daemon\/influence\/project-weights\.ts/.test(url) },
  {
    phase: 'prepare (score)',
    matches: (url) =>
      /daemon\/influence\/(prepare|finite-check|matmul-kernel|onnx-model|write-state|query-matrix)\.ts|onnxruntime-node/.test(url),
  },
  {
    phase: 'decode',
    matches: (url) => /daemon\/ingest\/validate\.ts|daemon\/influence\/sketch-decode\.ts|daemon\/shared\/float16/.test(url),
  },
  { phase: 'ingest stream', matches: (url) => /daemon\/ingest\/|daemon\/influence\/engine\.ts/.test(url) },
  {
    phase: 'gRPC transport',
    matches: (url) => /@grpc\/|protobufjs|node:internal\/http2|node:http2|node:net|node:internal\/stream/.test(url),
  },
  { phase: 'metrics', matches: (url) => /daemon\/metrics\/|prom-client/.test(url) },
];

interface Node {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

export interface PhaseRow {
  readonly phase: string;
  readonly ms: number;
}

/** Main-thread ms by phase within `span` of the busiest profile in `dir` (the main thread's). */
export function phaseBudget(dir: string, span: ProfileSpan | undefined): PhaseRow[] {
  let best: PhaseRow[] | undefined;
  let bestBusy = -1;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const rows = phasesOf(join(dir, file), span);
    const busy = rows.filter((r) => r.phase !== '(idle)').reduce((a, r) => a + r.ms, 0);
    if (busy > bestBusy) [best, bestBusy] = [rows, busy];
  }
  if (best === undefined) throw new Error(`no .cpuprofile in ${dir}`);
  return best;
}

function phasesOf(file: string, span: ProfileSpan | undefined): PhaseRow[] {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[]; startTime: number; samples: number[]; timeDeltas: number[] };
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parentOf = new Map<number, Node>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parentOf.set(c, n);
  // Each node's phase, found once: its own frame's, else its parent's.
  const phaseOf = new Map<number, string>();
  const resolve = (n: Node): string => {
    const known = phaseOf.get(n.id);
    if (known !== undefined) return known;
    const { url, functionName } = n.callFrame;
    let phase: string | undefined;
    if (functionName === '(garbage collector)' || functionName === '(idle)' || functionName === '(program)') phase = functionName;
    else phase = PHASES.find((p) => p.matches(url, functionName))?.phase;
    if (phase === undefined) {
      const parent = parentOf.get(n.id);
      phase = parent === undefined ? 'other' : resolve(parent);
    }
    phaseOf.set(n.id, phase);
    return phase;
  };
  const us = new Map<string, number>();
  let at = prof.startTime;
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = prof.timeDeltas[i] ?? 0;
    at += dt;
    if (span !== undefined && (at < span.fromUs || at > span.toUs)) continue;
    const node = byId.get(prof.samples[i] as number);
    if (node === undefined) continue;
    const phase = resolve(node);
    us.set(phase, (us.get(phase) ?? 0) + dt);
  }
  const order = [...PHASES.map((p) => p.phase), '(garbage collector)', '(program)', 'other', '(idle)'];
  return order.map((phase) => ({ phase, ms: (us.get(phase) ?? 0) / 1000 }));
}
