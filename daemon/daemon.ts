/**
 * Wires the daemon together: config → store → kernel → engine/weighting → ingest + REST.
 * `main.ts` adds process concerns (signals, exit codes); tests start daemons through this.
 */
import type { MotiveConfig } from './config/index.js';
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { Authorizer, MotiveError, createLogger, type Logger } from './shared/index.js';
import { Store } from './store/index.js';
import { InfluenceEngine, MatMulKernel, RunViews } from './influence/index.js';
import { WeightingService } from './weighting/index.js';
import { IngestServer, DAEMON_NAME, type IngestOptions } from './ingest/index.js';
import { buildApi, LiveFeed, LIVE_EVENT_TYPES } from './api/index.js';
import { registerMotionRoutes } from './api/motion-routes.js';
import { registerPreviewRoutes } from './api/preview-routes.js';
import { registerClipPage } from './api/clip-page.js';
import { registerPageStyle } from './api/page-style.js';
import { MotiveMetrics, registerMetricsRoute } from './metrics/index.js';

export type DaemonState = 'starting' | 'running' | 'draining' | 'stopped' | 'failed';

export interface RunningDaemon {
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly store: Store;
  readonly engine: InfluenceEngine;
  readonly weighting: WeightingService;
  readonly ingest: IngestServer;
  readonly log: Logger;
  /** Prometheus metrics, served on `GET /metrics`. */
  readonly metrics: MotiveMetrics;
  /** The WebSocket live feed and the page at `/`. */
  readonly live: LiveFeed;
  state(): DaemonState;
  /** Graceful stop: drain streams within `shutdownGraceMs`, flush weights, close the store. */
  stop(): Promise<void>;
}

/** Reads the TLS key pair named in the config, failing with the file named. */
function readTls(tls: MotiveConfig['tls']): { cert: Buffer; key: Buffer } | undefined {
  if (tls === null) return undefined;
  try {
    return { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) };
  } catch (err) {
    throw new MotiveError('MOTIVE_CONFIG_TLS', (err as Error).message, { cause: err });
  }
}

/** Opens the store the config names, its repairs logged as warnings. */
async function openStore(config: MotiveConfig, log: Logger): Promise<Store> {
  const store = await Store.open({
    dataDir: config.dataDir,
    mapSizeBytes: config.store.mapSizeBytes,
    commitDelayMs: config.store.commitDelayMs,
    maxDirtySamples: config.store.maxDirtySamples,
    flushIntervalMs: config.store.flushIntervalMs,
    flushChunkSamples: config.store.flushChunkSamples,
    segmentBytes: config.store.segmentBytes,
    syncCommits: config.store.syncCommits,
    onRepair: (message, detail) => log.warn(detail, message),
  });
  store.jobs.maxBacklog = config.sidecar.maxBacklog;
  return store;
}

/** The gRPC edge's options from the config. */
function ingestOptions(config: MotiveConfig, auth: Authorizer, tls: { cert: Buffer; key: Buffer } | undefined): IngestOptions {
  return {
    host: config.grpc.host,
    port: config.grpc.port,
    maxMessageBytes: config.grpc.maxMessageBytes,
    streamInflightBytes: config.grpc.streamInflightBytes,
    maxStalledMs: config.grpc.maxStalledMs,
    receiveWindowBytes: config.grpc.receiveWindowBytes,
    auth,
    maxRuns: config.limits.maxRuns,
    leaseMs: config.sidecar.leaseMs,
    ...(tls === undefined ? {} : { tls }),
    scoreMode: config.score.normalize,
    maxDim: config.limits.maxDim,
    maxSampleIdBytes: config.limits.maxSampleIdBytes,
    maxQueries: config.limits.maxQueries,
  };
}

/**
 * Graceful stop: drain the streams within `graceMs`, refuse what is still queued after it, wait for
 * the groups already committing, flush the weights, and close the rest.
 */
async function drainAndClose(
  graceMs: number,
  p: {
    ingest: IngestServer;
    engine: InfluenceEngine;
    weighting: WeightingService;
    metrics: MotiveMetrics;
    api: FastifyInstance;
    kernel: MatMulKernel;
    store: Store;
  },
): Promise<void> {
  const { ingest, engine, weighting, metrics, api, kernel, store } = p;
  const deadline = Date.now() + graceMs;
  await ingest.drain(graceMs);
  // Past the grace period, what is still queued was never acknowledged: trainers resend it.
  // Refuse it, so that only the groups already committing are waited for.
  await Promise.race([engine.drained(), new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())).unref())]);
  engine.refuseQueued(new MotiveError('MOTIVE_INGEST_SHUTTING_DOWN'));
  await engine.drained();
  await weighting.flushAll();
  weighting.close();
  metrics.close();
  await api.close();
  await kernel.close();
  await store.close();
}

/** The REST app with every route, the live feed and the metrics on it. */
function buildHttp(
  config: MotiveConfig,
  parts: {
    store: Store;
    engine: InfluenceEngine;
    views: RunViews;
    weighting: WeightingService;
    log: Logger;
    auth: Authorizer;
    ingest: IngestServer;
  },
  tls: { cert: Buffer; key: Buffer } | undefined,
): { api: FastifyInstance; live: LiveFeed; metrics: MotiveMetrics } {
  const { store, engine, views, weighting, log, auth, ingest } = parts;
  const api = buildApi(
    {
      store,
      engine,
      views,
      weighting,
      log,
      auth,
      attachedCounts: () => ingest.attachedCounts(),
      detachRun: (runId) => ingest.detachRun(runId),
      version: DAEMON_NAME,
      dataDir: config.dataDir,
    },
    {
      maxListLimit: config.limits.maxAttributeLimit,
      bodyLimitBytes: Math.max(1024 * 1024, config.limits.maxDim * 32),
      ...(tls === undefined ? {} : { tls }),
    },
  );
  const live = new LiveFeed({ store, engine, weighting, log, auth });
  live.register(api);
  const metrics = new MotiveMetrics({
    store,
    engine,
    ingest,
    weighting,
    attachedCounts: () => ingest.attachedCounts(),
    liveStats: () => live.stats(),
    liveEventTypes: LIVE_EVENT_TYPES,
    log,
  });
  registerMetricsRoute(api, metrics);
  registerMotionRoutes(api, { store, views, votePercentile: config.score.votePercentile });
  registerPreviewRoutes(api, store);
  registerClipPage(api);
  registerPageStyle(api);
  return { api, live, metrics };
}

export async function startDaemon(config: MotiveConfig, log: Logger = createLogger(config.logLevel)): Promise<RunningDaemon> {
  let state: DaemonState = 'starting';
  const store = await openStore(config, log);
  const auth = new Authorizer(config.auth.tokens, config.auth.trainerToken);
  const tls = readTls(config.tls);
  const kernel = await MatMulKernel.create({ threads: config.influence.threads });
  const engine = new InfluenceEngine(store, kernel, log, {
    maxGroupBytes: config.store.maxGroupBytes,
    scanChunkSamples: config.influence.scanChunkSamples,
    maxSamplesPerRun: config.limits.maxSamplesPerRun,
  });
  const weighting = new WeightingService(store, config.weights, log);
  engine.setWeigher(weighting);
  engine.onCommit((e) => {
    if (e.batches > 0 || e.querySets.length > 0) weighting.committed(e.runId, e.querySets.length > 0);
  });
  // A crash can fall between a commit and the recompute it asked for, and resends of what was
  // committed are duplicates that ask for none: every recovered run is recomputed once.
  for (const run of store.runs()) weighting.schedule(run.info.id);
  const views = new RunViews(config.score.votePercentile, config.weights);
  const ingest = new IngestServer({ store, engine, weighting, log }, ingestOptions(config, auth, tls));
  const { api, live, metrics } = buildHttp(config, { store, engine, views, weighting, log, auth, ingest }, tls);
  ingest.observer = {
    rejected: (code) => metrics.rejectedMessage(code),
    attached: (runId, delta) => metrics.attached(runId, delta),
  };
  let grpcPort: number;
  let httpPort: number;
  try {
    grpcPort = await ingest.listen();
    await api.listen({ host: config.http.host, port: config.http.port });
    const addr = api.server.address();
    httpPort = typeof addr === 'object' && addr !== null ? addr.port : config.http.port;
  } catch (err) {
    state = 'failed';
    metrics.close();
    ingest.close();
    await api.close();
    await kernel.close();
    await store.close();
    throw err;
  }
  state = 'running';
  let stopping: Promise<void> | undefined;
  return {
    grpcPort,
    httpPort,
    store,
    engine,
    weighting,
    ingest,
    log,
    metrics,
    live,
    state: () => state,
    stop: () => {
      stopping ??= (async () => {
        state = 'draining';
        await drainAndClose(config.shutdownGraceMs, { ingest, engine, weighting, metrics, api, kernel, store });
        state = 'stopped';
      })();
      return stopping;
    },
  };
}
