/**
 * The live feed's events as they travel on the WebSocket, one JSON object per message
 * (docs/observability.md, "WebSocket feed"). The server builds them with these types and `motive watch` reads
 * them with the same ones, so a field renamed on one side fails to compile on the other.
 *
 * This file holds types and pure helpers only: the CLI imports it without the server.
 */
import type { SampleMotion } from './sample-motion.js';
import type { SidecarView } from './sidecar-view.js';

/** Every event type a viewer can ask for (`?types=a,b`; default all). */
export const LIVE_EVENT_TYPES = ['batches', 'weights', 'harmful', 'queries', 'top'] as const;
export type LiveEventType = (typeof LIVE_EVENT_TYPES)[number];

/** What every event carries: its type, its run, and when it was sent (ms since the epoch). */
interface LiveEventBase<T extends string> {
  readonly type: T;
  readonly run: string;
  readonly t: number;
}

/** The first event on every connection (never filtered out by `?types=`). */
export interface LiveHelloEvent extends LiveEventBase<'hello'> {
  readonly types: readonly LiveEventType[];
  /** False while the run does not exist yet: the feed waits for it. */
  readonly exists: boolean;
}

/** Committed batches, coalesced over `batchWindowMs`, with rates over the last second. */
export interface LiveBatchesEvent extends LiveEventBase<'batches'> {
  readonly batches: number;
  readonly sketches: number;
  readonly bytes: number;
  readonly lastStep: number;
  /** The longest group commit among them, ms. */
  readonly commitMs: number;
  readonly fromMs: number;
  readonly toMs: number;
  readonly batchesPerSec: number;
  readonly sketchesPerSec: number;
}

/** A new weights version: how many changed, the run's totals, and the first changes. */
export interface LiveWeightsEvent extends LiveEventBase<'weights'> {
  readonly version: number;
  /** True for a full recompute, false for weights projected with a batch. */
  readonly full: boolean;
  readonly changed: number;
  readonly newlyDownweighted: number;
  readonly downweighted: number;
  readonly quarantined: number;
  readonly changes: ReadonlyArray<{ readonly id: string; readonly weight: number }>;
}

/** Samples whose weight fell to the harmful threshold or below from above it. */
export interface LiveHarmfulEvent extends LiveEventBase<'harmful'> {
  readonly version: number;
  /** How many crossed (the list holds at most `maxIdsPerEvent`). */
  readonly count: number;
  readonly threshold: number;
  readonly samples: ReadonlyArray<{ readonly id: string; readonly score: number; readonly weight: number; readonly quarantined: boolean }>;
}

/** A query-set refresh. */
export interface LiveQueriesEvent extends LiveEventBase<'queries'> {
  readonly version: number;
  readonly step: number;
  readonly queries: number;
  readonly ids: readonly string[];
  readonly groups: readonly string[];
}

/** One row of a top list. */
export interface LiveSampleRow {
  readonly id: string;
  readonly score: number;
  /** The fused z the row was ranked by (null: ranked by score; docs/method.md, "The fused signal"). */
  readonly fused: number | null;
  readonly weight: number;
  readonly seen: number;
  readonly lastStep: number;
}

/** A top-list row with the clip's motion descriptors (null when the clip was never profiled). */
export type LiveTopRow = LiveSampleRow & { readonly motion: SampleMotion };

/** The top harmful / helpful clips and the run's histograms. */
export interface LiveTopEvent extends LiveEventBase<'top'> {
  readonly samples: number;
  readonly batches: number;
  readonly sketches: number;
  readonly lastStep: number;
  readonly weightsVersion: number;
  readonly queryVersion: number;
  readonly downweighted: number;
  readonly quarantined: number;
  readonly harmful: readonly LiveTopRow[];
  readonly helpful: readonly LiveTopRow[];
  readonly scoreHistogram: { readonly min: number; readonly max: number; readonly counts: readonly number[] };
  readonly weightHistogram: { readonly le: readonly number[]; readonly counts: readonly number[] };
  readonly sidecar: SidecarView | null;
}

/** Every message of the live feed, discriminated on `type`. */
export type LiveEvent = LiveHelloEvent | LiveBatchesEvent | LiveWeightsEvent | LiveHarmfulEvent | LiveQueriesEvent | LiveTopEvent;

/** The event of type `T`. */
export type LiveEventOf<T extends LiveEvent['type']> = Extract<LiveEvent, { type: T }>;

/** An event's own fields, without the envelope every event shares. */
export type LiveEventBody<T extends LiveEvent['type']> = Omit<LiveEventOf<T>, 'type' | 'run' | 't'>;

/** Counters the live feed keeps; metrics reads them at scrape time. */
export interface LiveFeedStats {
  readonly clients: number;
  readonly sent: Readonly<Record<string, number>>;
  /** Events not sent to a client because its send buffer was full. */
  readonly skipped: number;
  /** Clients disconnected for staying too far behind. */
  readonly dropped: number;
}

/** A sample's first drop below weight 1, as `GET /v1/runs/:run/downweighted/recent` lists it. */
export interface RecentDownweight {
  readonly id: string;
  /** Its weight right after the drop. */
  readonly weight: number;
  /** The weights version that dropped it. */
  readonly version: number;
  /** When the daemon announced it (ms since the epoch). */
  readonly atMs: number;
}

/** Parses `?types=` into a set; throws on an unknown type. */
export function parseTypes(raw: string | null): Set<LiveEventType> {
  if (raw === null || raw.trim() === '') return new Set(LIVE_EVENT_TYPES);
  const out = new Set<LiveEventType>();
  for (const t of raw.split(',')) {
    const name = t.trim();
    if (!isLiveEventType(name))
      throw new Error(`unknown event type ${JSON.stringify(name.slice(0, 64))}; known: ${LIVE_EVENT_TYPES.join(', ')}`);
    out.add(name);
  }
  return out;
}

function isLiveEventType(name: string): name is LiveEventType {
  return (LIVE_EVENT_TYPES as readonly string[]).includes(name);
}

const EVENT_TYPES: ReadonlySet<string> = new Set<string>(['hello', ...LIVE_EVENT_TYPES]);

/**
 * Whether a parsed message is a live event: an object with a known `type`, a `run` and a time.
 * The feed is the daemon's own output, so the envelope is checked and the fields trusted.
 */
export function isLiveEvent(value: unknown): value is LiveEvent {
  if (typeof value !== 'object' || value === null) return false;
  if (!('type' in value) || !('run' in value) || !('t' in value)) return false;
  return typeof value.type === 'string' && EVENT_TYPES.has(value.type) && typeof value.run === 'string' && typeof value.t === 'number';
}
