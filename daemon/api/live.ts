/**
 * The live feed: a WebSocket per viewer on `/v1/runs/:run/live`, pushing what happens to a run as
 * it happens, plus the built-in page at `/` that draws it. This file is the facade: it hears the
 * engine's commits and the weighting service's updates on their diagnostics channels and decides
 * what to send and when; the
 * parts are beside it:
 * - `live-events.ts`: the events' types, shared with `motive watch`;
 * - `live-transport.ts`: admitting viewers and sending to them under the memory bound;
 * - `live-top.ts`: the `top` event's lists and histograms;
 * - `live-routes.ts`: the page and `GET /v1/runs/:run/downweighted/recent`.
 *
 * Event types (a client picks some with `?types=a,b`; default all):
 * - `batches`: committed batches, coalesced per run over `batchWindowMs` (leading edge: the first
 *   commit after a quiet window goes out at once), with ingest rates per second;
 * - `weights`: a new weights version (how many changed, totals, the first changes);
 * - `harmful`: samples crossing the harmful threshold: their weight falls to `harmfulWeight` or
 *   below (or to 0 under quarantine) from above it;
 * - `queries`: a query-set refresh;
 * - `top`: the top harmful / helpful clips and the score / weight histograms, at most once per
 *   `topIntervalMs` per run, and once on connect.
 */
import type { FastifyInstance } from 'fastify';
import { MotiveError, type Authorizer, type Logger } from '../shared/index.js';
import { DistributionCache, subscribeCommits, weightCounts, type CommitEvent, type InfluenceEngine } from '../influence/index.js';
import type { RunState, Store } from '../store/index.js';
import { weightsUpdated, type WeightUpdateEvent, type WeightingService } from '../weighting/index.js';
import type { LiveEventBody, LiveEventType, LiveFeedStats, RecentDownweight } from './live-events.js';
import { LiveTransport, liveMessage, type LiveClient } from './live-transport.js';
import { topEventBody } from './live-top.js';
import { registerLiveRoutes } from './live-routes.js';

export { LIVE_EVENT_TYPES, parseTypes } from './live-events.js';
export type { LiveEvent, LiveEventType, LiveFeedStats, LiveSampleRow, RecentDownweight } from './live-events.js';
export { topSamples, type TopSignal } from './live-top.js';

export interface LiveFeedOptions {
  /**
   * Window over which committed batches are coalesced into one `batches` event, ms. Default 100:
   * short enough that a viewer sees a commit within a quarter second even on a busy machine, while
   * the event's rates (`batchesPerSec`, `sketchesPerSec`) are over the last full second.
   */
  readonly batchWindowMs?: number;
  /** Least time between two `top` events of a run, ms. Default 1000. */
  readonly topIntervalMs?: number;
  /** Rows of each top list. Default 10. */
  readonly topLimit?: number;
  /** A client with more than this many bytes waiting to be sent gets no new events. Default 1 MiB. */
  readonly maxBufferedBytes?: number;
  /** A client that stays over `maxBufferedBytes` this long is disconnected, ms. Default 5000. */
  readonly maxBehindMs?: number;
  /** Most simultaneous clients. Default 256. */
  readonly maxClients?: number;
  /**
   * A sample is harmful once its weight is at or below this (with the default policy, beta 0.5,
   * that is a robust z-score of about -1.4). Default 0.5.
   */
  readonly harmfulWeight?: number;
  /** Most sample ids listed in one `weights` / `harmful` event (the counts stay exact). Default 100. */
  readonly maxIdsPerEvent?: number;
  /** Most recent first-time down-weightings kept per run for the REST list. Default 1000. */
  readonly recentLimit?: number;
}

export interface LiveFeedDeps {
  readonly store: Store;
  readonly engine: InfluenceEngine;
  readonly weighting: WeightingService;
  readonly log: Logger;
  /** When tokens are configured, a viewer needs `read` on the run, as for REST. */
  readonly auth?: Authorizer;
}

interface BatchAccumulator {
  batches: number;
  sketches: number;
  bytes: number;
  lastStep: number;
  commitMsMax: number;
  fromMs: number;
  toMs: number;
}

interface RunFeedState {
  pending: BatchAccumulator | undefined;
  batchTimer: NodeJS.Timeout | undefined;
  lastBatchFlushMs: number;
  /** Recent commits (Date.now ms, sketches, batches) over the last second, for rates. */
  recent: Array<{ t: number; sketches: number; batches: number }>;
  topTimer: NodeJS.Timeout | undefined;
  lastTopMs: number;
  /** Samples at or below the harmful weight, to see crossings; filled from the store on first use. */
  harmful: Set<string> | undefined;
  /** The latest samples down-weighted for the first time, oldest first, at most `recentLimit`. */
  downweightedLog: RecentDownweight[];
}

/** The WebSocket live feed of every run; see the file comment for the events. */
export class LiveFeed {
  private readonly deps: LiveFeedDeps;
  private readonly o: Required<LiveFeedOptions>;
  private readonly transport: LiveTransport;
  private readonly runs = new Map<string, RunFeedState>();
  private readonly distributions = new DistributionCache();
  private readonly unsubscribe: Array<() => void>;
  private closed = false;

  constructor(deps: LiveFeedDeps, options: LiveFeedOptions = {}) {
    this.deps = deps;
    this.o = {
      batchWindowMs: options.batchWindowMs ?? 100,
      topIntervalMs: options.topIntervalMs ?? 1000,
      topLimit: options.topLimit ?? 10,
      maxBufferedBytes: options.maxBufferedBytes ?? 1024 * 1024,
      maxBehindMs: options.maxBehindMs ?? 5000,
      maxClients: options.maxClients ?? 256,
      maxIdsPerEvent: options.maxIdsPerEvent ?? 100,
      harmfulWeight: options.harmfulWeight ?? 0.5,
      recentLimit: options.recentLimit ?? 1000,
    };
    this.transport = new LiveTransport(this.o, deps.log, deps.auth, (c) => this.connected(c));
    // Heard on the engine's and the weighting service's channels (docs/observability.md, "Channels").
    const onError = (err: unknown): void => deps.log.error({ err }, 'live feed subscriber failed');
    this.unsubscribe = [
      subscribeCommits(deps.engine, (e) => this.onCommit(e), onError),
      weightsUpdated.subscribe(deps.weighting, (e) => this.onWeights(e), onError),
    ];
  }

  /** Counters for metrics. */
  stats(): LiveFeedStats {
    return this.transport.stats();
  }

  /** Sends one event to every viewer of `runId` that asked for `type`; `make` runs only when one did. */
  publish<T extends LiveEventType>(runId: string, type: T, make: () => LiveEventBody<T>): void {
    this.transport.publish(runId, type, make);
  }

  /** Bytes waiting to be sent, per connected client (for tests and diagnostics). */
  bufferedBytes(): number[] {
    return this.transport.bufferedBytes();
  }

  /**
   * Serves the page at `/`, the REST list and the feed on `app.server`'s upgrade requests; closes
   * the feed before the app closes.
   */
  register(app: FastifyInstance): void {
    registerLiveRoutes(app, { recentLimit: this.o.recentLimit, recentDownweighted: (run, limit) => this.recentDownweighted(run, limit) });
    app.server.on('upgrade', (req, socket, head) => this.transport.upgrade(req, socket, head));
    app.addHook('preClose', async () => this.close());
  }

  /**
   * The run's latest first-time down-weightings, newest first, with each sample's current score and
   * weight. Kept in memory since the daemon started (a restart empties it).
   */
  recentDownweighted(
    runId: string,
    limit: number,
  ): { samples: Array<RecentDownweight & { at: string; score: number; currentWeight: number }> } {
    const run = this.deps.store.run(runId);
    if (run === undefined) throw new MotiveError('MOTIVE_API_RUN_NOT_FOUND', runId);
    const log = this.runs.get(runId)?.downweightedLog ?? [];
    const rows = log
      .slice(-limit)
      .reverse()
      .map((r) => {
        const s = run.samples.get(r.id);
        return { ...r, at: new Date(r.atMs).toISOString(), score: s === undefined ? 0 : run.score(s), currentWeight: s?.weight ?? 1 };
      });
    return { samples: rows };
  }

  /** A viewer was admitted: its hello, then the run's top lists when it asked for them. */
  private connected(client: LiveClient): void {
    const run = this.deps.store.run(client.runId);
    const hello = liveMessage('hello', client.runId, { types: [...client.types], exists: run !== undefined });
    this.transport.sendTo(client, 'hello', hello);
    if (run !== undefined && client.types.has('top'))
      this.transport.sendTo(client, 'top', liveMessage('top', client.runId, this.topBody(run)));
  }

  private runState(runId: string): RunFeedState {
    let s = this.runs.get(runId);
    if (s === undefined) {
      s = {
        pending: undefined,
        batchTimer: undefined,
        lastBatchFlushMs: 0,
        recent: [],
        topTimer: undefined,
        lastTopMs: 0,
        harmful: undefined,
        downweightedLog: [],
      };
      this.runs.set(runId, s);
    }
    return s;
  }

  private onCommit(e: CommitEvent): void {
    if (this.closed) return;
    if (e.batches > 0 && this.transport.hasAnyClient(e.runId)) this.addBatches(e);
    for (const qs of e.querySets) {
      this.transport.publish(e.runId, 'queries', () => ({
        version: qs.version,
        step: qs.step,
        queries: qs.ids.length,
        ids: qs.ids.slice(0, this.o.maxIdsPerEvent),
        groups: [...new Set(qs.groups)].slice(0, this.o.maxIdsPerEvent),
      }));
    }
    this.scheduleTop(e.runId);
  }

  /** Adds a commit's batches to the run's window; the window's first commit after a quiet one goes out at once. */
  private addBatches(e: CommitEvent): void {
    const now = Date.now();
    const st = this.runState(e.runId);
    st.recent.push({ t: now, sketches: e.sketches, batches: e.batches });
    const acc = (st.pending ??= { batches: 0, sketches: 0, bytes: 0, lastStep: 0, commitMsMax: 0, fromMs: now, toMs: now });
    acc.batches += e.batches;
    acc.sketches += e.sketches;
    acc.bytes += e.bytes;
    acc.lastStep = Math.max(acc.lastStep, e.lastStep);
    acc.commitMsMax = Math.max(acc.commitMsMax, e.commitMs);
    acc.toMs = now;
    if (st.batchTimer !== undefined) return;
    const wait = st.lastBatchFlushMs + this.o.batchWindowMs - now;
    if (wait <= 0) this.flushBatches(e.runId);
    else {
      st.batchTimer = setTimeout(() => this.flushBatches(e.runId), wait);
      st.batchTimer.unref();
    }
  }

  private flushBatches(runId: string): void {
    const st = this.runState(runId);
    st.batchTimer = undefined;
    const acc = st.pending;
    if (acc === undefined) return;
    st.pending = undefined;
    const now = Date.now();
    st.lastBatchFlushMs = now;
    while (st.recent.length > 0 && st.recent[0]!.t < now - 1000) st.recent.shift();
    let sketches1s = 0;
    let batches1s = 0;
    for (const r of st.recent) {
      sketches1s += r.sketches;
      batches1s += r.batches;
    }
    this.transport.publish(runId, 'batches', () => ({
      batches: acc.batches,
      sketches: acc.sketches,
      bytes: acc.bytes,
      lastStep: acc.lastStep,
      commitMs: acc.commitMsMax,
      fromMs: acc.fromMs,
      toMs: acc.toMs,
      batchesPerSec: batches1s,
      sketchesPerSec: sketches1s,
    }));
  }

  private onWeights(e: WeightUpdateEvent): void {
    if (this.closed) return;
    const run = this.deps.store.run(e.runId);
    // Crossings are tracked even with nobody watching, so a viewer who connects later sees only new ones.
    const crossed = this.trackCrossings(e, run);
    if (!this.transport.hasAnyClient(e.runId)) return;
    const cap = this.o.maxIdsPerEvent;
    this.transport.publish(e.runId, 'weights', () => {
      // Counted from the weights alone: a weights event comes with every commit that moved one.
      const d = run === undefined ? undefined : weightCounts(run);
      return {
        version: e.version,
        full: e.full,
        changed: e.sampleIds.length,
        newlyDownweighted: e.newlyDownweighted.length,
        downweighted: d?.downweighted ?? 0,
        quarantined: d?.quarantined ?? 0,
        changes: e.sampleIds.slice(0, cap).map((id, i) => ({ id, weight: e.weights[i] ?? 1 })),
      };
    });
    if (crossed.length > 0) {
      this.transport.publish(e.runId, 'harmful', () => {
        const rows = crossed.slice(0, cap).map((id) => {
          const s = run?.samples.get(id);
          return {
            id,
            score: s === undefined || run === undefined ? 0 : run.score(s),
            weight: s?.weight ?? 1,
            quarantined: s?.weight === 0,
          };
        });
        return { version: e.version, count: crossed.length, threshold: this.o.harmfulWeight, samples: rows };
      });
    }
    this.scheduleTop(e.runId);
  }

  /**
   * Updates the run's set of harmful samples from a weights update and logs its first-time
   * down-weightings; returns the samples that crossed the harmful threshold downwards.
   */
  private trackCrossings(e: WeightUpdateEvent, run: RunState | undefined): string[] {
    const st = this.runState(e.runId);
    const thr = this.o.harmfulWeight;
    if (st.harmful === undefined) {
      st.harmful = new Set();
      // The store already holds this update's weights: seed from everything else.
      const inEvent = new Set(e.sampleIds);
      if (run !== undefined) for (const s of run.samples.values()) if (s.weight <= thr && !inEvent.has(s.id)) st.harmful.add(s.id);
    }
    const crossed: string[] = [];
    // Where each newly downweighted id is in the event: found in the same pass, not through a
    // map of every id (a recompute's event names up to every sample of the run).
    const newly = new Map<string, number>(e.newlyDownweighted.map((id) => [id, -1]));
    const harmful = st.harmful;
    const ids = e.sampleIds;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as string;
      const w = e.weights[i] ?? 1;
      if (w <= thr) {
        if (!harmful.has(id)) {
          harmful.add(id);
          crossed.push(id);
        }
      } else harmful.delete(id);
      if (newly.size > 0 && newly.has(id)) newly.set(id, i);
    }
    const atMs = Date.now();
    const log = st.downweightedLog;
    for (const [id, i] of newly) log.push({ id, weight: e.weights[i] ?? 1, version: e.version, atMs });
    if (log.length > this.o.recentLimit) log.splice(0, log.length - this.o.recentLimit);
    return crossed;
  }

  private scheduleTop(runId: string): void {
    if (!this.transport.hasSubscribers(runId, 'top')) return;
    const st = this.runState(runId);
    if (st.topTimer !== undefined) return;
    const wait = st.lastTopMs + this.o.topIntervalMs - Date.now();
    const fire = (): void => {
      st.topTimer = undefined;
      st.lastTopMs = Date.now();
      const run = this.deps.store.run(runId);
      // The distribution in slices first (it passes over every sample), then the event from it.
      if (run !== undefined)
        void this.distributions.refresh(run).then(
          () => this.transport.publish(runId, 'top', () => this.topBody(run)),
          (err: unknown) => this.deps.log.error({ err, runId }, 'live top event failed'),
        );
    };
    if (wait <= 0) fire();
    else {
      st.topTimer = setTimeout(fire, wait);
      st.topTimer.unref();
    }
  }

  private topBody(run: RunState): LiveEventBody<'top'> {
    return topEventBody(this.deps.store, this.deps.weighting, run, this.distributions.last(run), this.o.topLimit);
  }

  /** Disconnects every client and stops the timers. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const u of this.unsubscribe) u();
    for (const st of this.runs.values()) {
      clearTimeout(st.batchTimer);
      clearTimeout(st.topTimer);
    }
    this.transport.close();
  }
}
