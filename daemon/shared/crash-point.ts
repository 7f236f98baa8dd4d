/**
 * Crash points for the crash harness (docs/reliability.md, "Crash harness"): with
 * `MOTIVE_CRASH_AT=<point>:<n>` in its environment the daemon SIGKILLs itself the n-th time it
 * reaches `<point>`, so that kills land inside phases a timed kill from outside rarely meets (a
 * compaction between its copy and its deletion, a weight recompute between its commit and its
 * apply). Without the variable each call is one comparison. Nothing else reads it.
 */

/** Where the daemon can be made to die, by phase. */
export const CRASH_POINTS = {
  /** A group commit is durable; its Acks not sent, its batches not applied (engine). */
  ingest: 'ingest',
  /** A group commit holding a new query set is durable; not applied (engine). */
  query: 'query',
  /** A flush chunk is appended and synced; the samples not yet pointed at it (store). */
  flush: 'flush',
  /** The segment sizes are recorded before a log trim; the log entries not yet removed (store). */
  trim: 'trim',
  /** Compaction copied a segment's live frames; the samples not yet pointed at the copies (segments). */
  compact: 'compact',
  /** Compaction marked a segment as being deleted; the file not yet removed (segments). */
  'compact-remove': 'compact-remove',
  /** A weight recompute's commit is durable; its weights not applied (weighting). */
  recompute: 'recompute',
} as const;

export type CrashPoint = keyof typeof CRASH_POINTS;

/** The phase each point belongs to (the harness counts kills per phase). */
export const CRASH_PHASE: Readonly<Record<CrashPoint, 'ingest' | 'query' | 'flush' | 'compaction' | 'recompute'>> = {
  ingest: 'ingest',
  query: 'query',
  flush: 'flush',
  trim: 'flush',
  compact: 'compaction',
  'compact-remove': 'compaction',
  recompute: 'recompute',
};

let armed: { point: string; n: number } | null | undefined;
let reached = 0;

function parse(spec: string | undefined): { point: string; n: number } | null {
  if (spec === undefined || spec === '') return null;
  const m = /^([a-z-]+):([1-9][0-9]*)$/.exec(spec);
  if (m === null || !(m[1]! in CRASH_POINTS))
    throw new Error(`MOTIVE_CRASH_AT must be <point>:<n> with point one of ${Object.keys(CRASH_POINTS).join(', ')}`);
  return { point: m[1]!, n: Number(m[2]) };
}

/** Dies here (SIGKILL, no cleanup) if `MOTIVE_CRASH_AT` names this point and this is its n-th arrival. */
export function crashPoint(point: CrashPoint): void {
  if (armed === undefined) armed = parse(process.env.MOTIVE_CRASH_AT);
  if (armed === null || armed.point !== point) return;
  if (++reached < armed.n) return;
  process.kill(process.pid, 'SIGKILL');
}
