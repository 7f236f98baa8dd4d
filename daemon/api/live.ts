/**
 * The live feed: a WebSocket per viewer on `/v1/runs/:run/live`, pushing what happens to a run as
 * it happens, plus the built-in page at `/` that draws it.
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
 *
 * Memory stays bounded per client: each event is serialised once and shared; a client whose send
 * buffer holds more than `maxBufferedBytes` is skipped (counted), and one that stays over it for
 * `maxBehindMs` is disconnected (counted). Nothing is queued per client beyond the socket buffer.
 */
import { sampleMotion, type SampleMotion } from './sample-motion.js';
import { tokenParam } from './schemas.js';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { WebSocketServer, WebSocket } from 'ws';
import { MotiveError, httpToken, type Authorizer, type ErrorCode, type Logger } from '../shared/index.js';
import { DistributionCache, WEIGHT_BUCKETS, weightCounts, type CommitEvent, type InfluenceEngine } from '../influence/index.js';
import { sidecarView } from './sidecar-view.js';
import type { RunState, SampleState, Store } from '../store/index.js';
import { sampleSignal, type FusedOptions, type SignalStats, type WeightUpdateEvent, type WeightingService } from '../weighting/index.js';

/** Every event type of the live feed. */
export const LIVE_EVENT_TYPES = ['batches', 'weights', 'harmful', 'queries', 'top'] as const;
export type LiveEventType = (typeof LIVE_EVENT_TYPES)[number];

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

/** Counters the live feed keeps; metrics reads them at scrape time. */
export interface LiveFeedStats {
  readonly clients: number;
  readonly sent: Readonly<Record<string, number>>;
  /** Events not sent to a client because its send buffer was full. */
  readonly skipped: number;
  /** Clients disconnected for staying too far behind. */
  readonly dropped: number;
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

interface Client {
  readonly ws: WebSocket;
  readonly runId: string;
  readonly types: ReadonlySet<LiveEventType>;
  /** When the client's buffer first went over the limit (ms, Date.now), undefined when under. */
  overSinceMs: number | undefined;
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

const PAGE_URL = new URL('./page/index.html', import.meta.url);

/** Reason phrases of the upgrade refusals: fixed text, never built from the request. */
const REASONS: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  503: 'Service Unavailable',
};

interface Refusal {
  readonly status: number;
  readonly code: ErrorCode;
  readonly message: string;
}

function refusal(status: number, code: ErrorCode, detail?: string): Refusal {
  return { status, code, message: new MotiveError(code, detail).message };
}
const LIVE_PATH = /^\/v1\/runs\/([^/?]+)\/live$/;

/** The signal a top list ranks by: the weights' own (`weights.signal`) under their last recompute's statistics. */
export interface TopSignal {
  readonly stats: SignalStats;
  readonly options: FusedOptions;
}

/**
 * Picks the `limit` samples with the lowest (`harmful`) or highest (`helpful`) signal, without
 * sorting the run: the fused z under `signal` when given (ties by score, then id), else the score.
 */
export function topSamples(run: RunState, order: 'harmful' | 'helpful', limit: number, signal?: TopSignal): LiveSampleRow[] {
  const sign = order === 'harmful' ? 1 : -1;
  const features = run.features.size === 0 ? undefined : run.features;
  type Row = { key: number; tie: number; s: SampleState; score: number; fused: number | undefined };
  // true when `a` ranks before `b`.
  const before = (a: Row, b: Row): boolean => a.key < b.key || (a.key === b.key && (a.tie < b.tie || (a.tie === b.tie && a.s.id < b.s.id)));
  // `best` stays sorted, first-ranked first; a candidate enters only when it ranks before the last row.
  const best: Row[] = [];
  for (const s of run.samples.values()) {
    const score = run.score(s);
    const fused = signal === undefined ? undefined : sampleSignal(score, features?.get(s.id), signal.stats, signal.options).fused;
    const row: Row = { key: sign * (fused ?? score), tie: sign * score, s, score, fused };
    if (best.length === limit && !before(row, best[best.length - 1]!)) continue;
    let at = best.length;
    while (at > 0 && before(row, best[at - 1]!)) at--;
    best.splice(at, 0, row);
    if (best.length > limit) best.pop();
  }
  return best.map(({ s, score, fused }) => ({
    id: s.id,
    score,
    fused: fused ?? null,
    weight: s.weight,
    seen: s.seen,
    lastStep: s.lastStep,
  }));
}

/** Parses `?types=` into a set; throws on an unknown type. */
export function parseTypes(raw: string | null): Set<LiveEventType> {
  if (raw === null || raw.trim() === '') return new Set(LIVE_EVENT_TYPES);
  const out = new Set<LiveEventType>();
  for (const t of raw.split(',')) {
    const name = t.trim();
    if (!(LIVE_EVENT_TYPES as readonly string[]).includes(name))
      throw new Error(`unknown event type ${JSON.stringify(name.slice(0, 64))}; known: ${LIVE_EVENT_TYPES.join(', ')}`);
    out.add(name as LiveEventType);
  }
  return out;
}

/** The WebSocket live feed of every run; see the file comment for the events and the memory bound. */
export class LiveFeed {
  private readonly deps: LiveFeedDeps;
  private readonly o: Required<LiveFeedOptions>;
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 4096, perMessageDeflate: false });
  private readonly clients = new Set<Client>();
  private readonly runs = new Map<string, RunFeedState>();
  private readonly distributions = new DistributionCache();
  private readonly sentByType: Record<string, number> = Object.fromEntries(LIVE_EVENT_TYPES.map((t) => [t, 0]));
  private skipped = 0;
  private dropped = 0;
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
    deps.engine.onCommit((e) => this.onCommit(e));
    deps.weighting.onUpdate((e) => this.onWeights(e));
  }

  /** Counters for metrics. */
  stats(): LiveFeedStats {
    return { clients: this.clients.size, sent: { ...this.sentByType }, skipped: this.skipped, dropped: this.dropped };
  }

  /** Bytes waiting to be sent, per connected client (for tests and diagnostics). */
  bufferedBytes(): number[] {
    return [...this.clients].map((c) => c.ws.bufferedAmount);
  }

  /**
   * Serves the page at `/` and the feed on `app.server`'s upgrade requests; closes the feed
   * before the app closes.
   */
  register(app: FastifyInstance): void {
    let page: Promise<string> | undefined;
    // The page needs `read` (docs/security.md); it passes the `?token=` it was opened with on to
    // the requests it makes, which each check it again.
    app.get('/', { config: { spansRuns: 'filtered' } }, async (_req, reply) => {
      page ??= readFile(PAGE_URL, 'utf8');
      return reply
        .header('content-type', 'text/html; charset=utf-8')
        .header('cache-control', 'no-cache')
        .send(await page);
    });
    app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
    app.get<{ Params: { run: string }; Querystring: { limit: number } }>('/v1/runs/:run/downweighted/recent', {
      schema: {
        params: { type: 'object', properties: { run: { type: 'string', minLength: 1 } }, required: ['run'] },
        querystring: {
          type: 'object',
          properties: { limit: { type: 'integer', minimum: 1, maximum: this.o.recentLimit, default: 50 }, token: tokenParam },
          additionalProperties: false,
        },
      },
      handler: async (req) => this.recentDownweighted(req.params.run, req.query.limit),
    });
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

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const admitted = this.admit(req);
    if ('status' in admitted) {
      // The status line and headers are fixed text; what the request said goes only into the
      // JSON body, escaped, and only once the token has been checked.
      const body = JSON.stringify({ code: admitted.code, message: admitted.message });
      socket.end(
        `HTTP/1.1 ${admitted.status} ${REASONS[admitted.status]}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.connected(ws, admitted.runId, admitted.types);
    });
  }

  /**
   * Decides on an upgrade request: the run and event types, or the refusal. The token is checked
   * before anything else of the request is read, so a stranger learns nothing from the answers.
   */
  private admit(req: IncomingMessage): { runId: string; types: Set<LiveEventType> } | Refusal {
    const raw = req.url ?? '/';
    const auth = this.deps.auth;
    const token = httpToken(req.headers, raw);
    if (auth !== undefined && auth.enabled && auth.identify(token) === undefined) return refusal(401, 'MOTIVE_API_UNAUTHENTICATED');
    let url: URL;
    try {
      url = new URL(raw, 'http://localhost');
    } catch {
      return refusal(400, 'MOTIVE_API_BAD_REQUEST', 'malformed URL');
    }
    const match = LIVE_PATH.exec(url.pathname);
    if (match === null) return refusal(404, 'MOTIVE_API_NOT_FOUND', 'no WebSocket route at this path');
    let runId: string;
    try {
      runId = decodeURIComponent(match[1]!);
    } catch {
      return refusal(400, 'MOTIVE_API_BAD_REQUEST', 'malformed run id escape');
    }
    const verdict = auth?.check(token, 'read', runId);
    if (verdict?.ok === false)
      return refusal(
        verdict.reason === 'unauthenticated' ? 401 : 403,
        verdict.reason === 'unauthenticated' ? 'MOTIVE_API_UNAUTHENTICATED' : 'MOTIVE_API_FORBIDDEN',
      );
    if (this.closed) return refusal(503, 'MOTIVE_INGEST_SHUTTING_DOWN');
    if (this.clients.size >= this.o.maxClients) return refusal(503, 'MOTIVE_API_TOO_MANY_CLIENTS', `at most ${this.o.maxClients}`);
    try {
      return { types: parseTypes(url.searchParams.get('types')), runId };
    } catch (err) {
      return refusal(400, 'MOTIVE_API_BAD_REQUEST', (err as Error).message);
    }
  }

  private connected(ws: WebSocket, runId: string, types: ReadonlySet<LiveEventType>): void {
    const client: Client = { ws, runId, types, overSinceMs: undefined };
    this.clients.add(client);
    ws.on('close', () => this.clients.delete(client));
    ws.on('error', () => this.clients.delete(client));
    // Clients only listen; anything they send is ignored (maxPayload bounds it).
    const run = this.deps.store.run(runId);
    this.sendTo(
      client,
      'hello',
      JSON.stringify({ type: 'hello', run: runId, types: [...types], exists: run !== undefined, t: Date.now() }),
    );
    if (run !== undefined && types.has('top')) this.sendTo(client, 'top', JSON.stringify(this.topEvent(run)));
  }

  private hasSubscribers(runId: string, type: LiveEventType): boolean {
    for (const c of this.clients) if (c.runId === runId && c.types.has(type)) return true;
    return false;
  }

  /** Sends one event to every client of `runId` that asked for `type`. `make` runs only when someone listens. */
  publish(runId: string, type: LiveEventType, make: () => object): void {
    if (!this.hasSubscribers(runId, type)) return;
    const payload = JSON.stringify({ type, run: runId, t: Date.now(), ...make() });
    for (const c of this.clients) if (c.runId === runId && c.types.has(type)) this.sendTo(c, type, payload);
  }

  private sendTo(c: Client, type: string, payload: string): void {
    if (c.ws.readyState !== WebSocket.OPEN) return;
    const now = Date.now();
    if (c.ws.bufferedAmount > this.o.maxBufferedBytes) {
      this.skipped++;
      c.overSinceMs ??= now;
      if (now - c.overSinceMs >= this.o.maxBehindMs) {
        this.dropped++;
        this.clients.delete(c);
        this.deps.log.warn({ runId: c.runId, bufferedBytes: c.ws.bufferedAmount }, 'live client too slow, disconnected');
        c.ws.terminate();
      }
      return;
    }
    c.overSinceMs = undefined;
    c.ws.send(payload);
    this.sentByType[type] = (this.sentByType[type] ?? 0) + 1;
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
    const now = Date.now();
    if (e.batches > 0 && this.hasAnyClient(e.runId)) {
      const st = this.runState(e.runId);
      st.recent.push({ t: now, sketches: e.sketches, batches: e.batches });
      const acc = (st.pending ??= { batches: 0, sketches: 0, bytes: 0, lastStep: 0, commitMsMax: 0, fromMs: now, toMs: now });
      acc.batches += e.batches;
      acc.sketches += e.sketches;
      acc.bytes += e.bytes;
      acc.lastStep = Math.max(acc.lastStep, e.lastStep);
      acc.commitMsMax = Math.max(acc.commitMsMax, e.commitMs);
      acc.toMs = now;
      if (st.batchTimer === undefined) {
        const wait = st.lastBatchFlushMs + this.o.batchWindowMs - now;
        if (wait <= 0) this.flushBatches(e.runId);
        else {
          st.batchTimer = setTimeout(() => this.flushBatches(e.runId), wait);
          st.batchTimer.unref();
        }
      }
    }
    for (const qs of e.querySets) {
      this.publish(e.runId, 'queries', () => ({
        version: qs.version,
        step: qs.step,
        queries: qs.ids.length,
        ids: qs.ids.slice(0, this.o.maxIdsPerEvent),
        groups: [...new Set(qs.groups)].slice(0, this.o.maxIdsPerEvent),
      }));
    }
    this.scheduleTop(e.runId);
  }

  private hasAnyClient(runId: string): boolean {
    for (const c of this.clients) if (c.runId === runId) return true;
    return false;
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
    this.publish(runId, 'batches', () => ({
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
    if (!this.hasAnyClient(e.runId)) return;
    const cap = this.o.maxIdsPerEvent;
    this.publish(e.runId, 'weights', () => {
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
      this.publish(e.runId, 'harmful', () => {
        const rows = crossed.slice(0, cap).map((id) => {
          const s = run?.samples.get(id);
          return {
            id,
            score: s === undefined || run === undefined ? 0 : run.score(s),
            weight: s?.weight ?? 1,
            quarantined: s?.weight === 0,
          };
        });
        return { version: e.version, count: crossed.length, threshold: thr, samples: rows };
      });
    }
    this.scheduleTop(e.runId);
  }

  private scheduleTop(runId: string): void {
    if (!this.hasSubscribers(runId, 'top')) return;
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
          () => this.publish(runId, 'top', () => this.topEvent(run)),
          (err: unknown) => this.deps.log.error({ err, runId }, 'live top event failed'),
        );
    };
    if (wait <= 0) fire();
    else {
      st.topTimer = setTimeout(fire, wait);
      st.topTimer.unref();
    }
  }

  private topEvent(run: RunState): object {
    const d = this.distributions.last(run);
    // Ranked as the weights are: by the fused signal under the last recompute's statistics.
    const w = this.deps.weighting;
    const stats = w.signal === 'fused' ? w.signalStats(run) : undefined;
    const signal = stats === undefined ? undefined : { stats, options: w.signalOptions };
    const weightCounts = d.weightCumulative.map((c, i) => c - (i === 0 ? 0 : (d.weightCumulative[i - 1] ?? 0)));
    return {
      type: 'top',
      run: run.info.id,
      t: Date.now(),
      samples: d.samples,
      batches: run.batches,
      sketches: run.sketches,
      lastStep: run.lastStep,
      weightsVersion: run.weightsVersion,
      queryVersion: run.latestQuerySet()?.version ?? 0,
      downweighted: d.downweighted,
      quarantined: d.quarantined,
      harmful: this.withMotion(topSamples(run, 'harmful', this.o.topLimit, signal)),
      helpful: this.withMotion(topSamples(run, 'helpful', this.o.topLimit, signal)),
      scoreHistogram: { min: d.scoreMin, max: d.scoreMax, counts: d.scoreBins },
      weightHistogram: { le: WEIGHT_BUCKETS, counts: weightCounts },
      sidecar: sidecarView(this.deps.store, run.info.id) ?? null,
    };
  }

  /** Adds each clip's motion descriptors (from `motive profile`), or null when not profiled. */
  private withMotion(rows: LiveSampleRow[]): Array<LiveSampleRow & { motion: SampleMotion }> {
    return rows.map((r) => ({ ...r, motion: sampleMotion(this.deps.store, r.id) }));
  }

  /** Disconnects every client and stops the timers. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const st of this.runs.values()) {
      clearTimeout(st.batchTimer);
      clearTimeout(st.topTimer);
    }
    for (const c of this.clients) c.ws.terminate();
    this.clients.clear();
    this.wss.close();
  }
}
