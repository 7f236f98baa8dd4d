/* eslint-disable max-lines-per-function -- IngestServer.handle takes the Attach stream's message kinds in turn, and its batch branch keeps in one place the order the Ack and exactly-once invariants need (docs/architecture.md). */
/**
 * The trainer-facing gRPC edge: `motive.v1.Attribution/Attach`, one bidi stream per rank.
 * Each stream is handled one message at a time (the call is paused while a message is being
 * accepted), and stops being read while its uncommitted bytes exceed `streamInflightBytes`, so a
 * slow store slows the trainer down through HTTP/2 flow control instead of growing memory.
 */
import type { Http2SecureServer, Http2Server, ServerHttp2Session } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import {
  MotiveError,
  describeError,
  ingestBatchAccepted,
  ingestBatchAcked,
  isMotiveError,
  type Authorizer,
  type Logger,
} from '../shared/index.js';
import type { InfluenceEngine } from '../influence/index.js';
import type { RunState, ScoreMode, Store } from '../store/index.js';
import type { WeightingService, WeightUpdateEvent } from '../weighting/index.js';
import { loadAttributionService, type DaemonMessageInit, type HelloMsg, type LeaseReplyInit, type TrainerMessageMsg } from './proto.js';
import { handleLease, type LeaseCall } from './lease.js';
import { decodeBatch, decodeQueries, validateHello, type IngestLimits, type ValidHello } from './validate.js';
import { TrainerStream } from './trainer-stream.js';

export const DAEMON_NAME = 'motived/0.1.0';

export interface IngestOptions extends IngestLimits {
  readonly host: string;
  readonly port: number;
  readonly maxMessageBytes: number;
  readonly streamInflightBytes: number;
  /**
   * A stream that has not been writable (its trainer not reading) this long is reset; meanwhile
   * its weight updates are merged into one (see TrainerStream).
   */
  readonly maxStalledMs: number;
  /** HTTP/2 receive window per connection and per stream (see {@link widenFlowControl}). */
  readonly receiveWindowBytes: number;
  readonly auth: Authorizer;
  readonly scoreMode: ScoreMode;
  /** Most runs the daemon holds. */
  readonly maxRuns: number;
  /** `sidecar.leaseMs`: how long a side-car worker holds leased jobs by default. */
  readonly leaseMs: number;
  /** Optional TLS key pair (PEM); plaintext when absent. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
}

export interface IngestDeps {
  readonly store: Store;
  readonly engine: InfluenceEngine;
  readonly weighting: WeightingService;
  readonly log: Logger;
}

/**
 * Observations for metrics; all optional. Accepted and acknowledged batches are published on the
 * `motive:ingest:*` channels instead (shared/channels.ts).
 */
export interface IngestObserver {
  rejected?(code: string): void;
  attached?(runId: string, delta: 1 | -1): void;
  /** A side-car worker leased `jobs` jobs of the run. */
  leased?(runId: string, worker: string, jobs: number): void;
}

type Call = grpc.ServerDuplexStream<TrainerMessageMsg, DaemonMessageInit>;

/**
 * Raises the HTTP/2 receive windows (per connection and per stream) of every session the server
 * accepts. With HTTP/2's default 64 KiB windows a trainer can only send 64 KiB per round trip of
 * WINDOW_UPDATEs, which a busy event loop delays: a 256-sketch fp16 batch (256 KiB) then takes
 * several turns to arrive, and ingest is bound by flow control, not by work. grpc-js has no server
 * option for it, so this reaches its HTTP/2 servers after bind.
 */
function widenFlowControl(server: grpc.Server, windowBytes: number): void {
  const servers = (server as unknown as { http2Servers?: Map<Http2Server | Http2SecureServer, unknown> }).http2Servers;
  if (servers === undefined) return;
  for (const h2 of servers.keys()) {
    h2.on('session', (session: ServerHttp2Session) => {
      try {
        session.settings({ initialWindowSize: windowBytes });
        session.setLocalWindowSize(windowBytes);
      } catch {
        // A session that closed before its settings went out needs none.
      }
    });
  }
}

export class IngestServer {
  private readonly server: grpc.Server;
  private readonly deps: IngestDeps;
  private readonly options: IngestOptions;
  private readonly streams = new Set<TrainerStream>();
  private readonly creatingRuns = new Map<string, Promise<RunState>>();
  private draining = false;
  observer: IngestObserver = {};

  constructor(deps: IngestDeps, options: IngestOptions) {
    this.deps = deps;
    this.options = options;
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': options.maxMessageBytes,
      'grpc.max_send_message_length': 256 * 1024 * 1024,
    });
    const { service } = loadAttributionService();
    this.server.addService(service, {
      Attach: (call: Call) => this.attach(call),
      Lease: (call: LeaseCall, callback: grpc.sendUnaryData<LeaseReplyInit>) =>
        handleLease(call, callback, deps.store, options, this.observer),
    });
    deps.weighting.onTrainerUpdate((e) => this.pushWeights(e));
  }

  /** Binds and starts; resolves with the bound port. */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      const tls = this.options.tls;
      const credentials =
        tls === undefined
          ? grpc.ServerCredentials.createInsecure()
          : grpc.ServerCredentials.createSsl(null, [{ cert_chain: tls.cert, private_key: tls.key }], false);
      this.server.bindAsync(`${this.options.host}:${this.options.port}`, credentials, (err, port) => {
        if (err !== null) {
          reject(err);
          return;
        }
        widenFlowControl(this.server, this.options.receiveWindowBytes);
        resolve(port);
      });
    });
  }

  /**
   * What waits to be written to each attached stream: messages queued in the call (beyond what
   * HTTP/2 took), and sample weights merged while the trainer does not read (for tests and
   * diagnostics).
   */
  backlog(): Array<{ runId: string | undefined; queuedMessages: number; pendingWeights: number }> {
    return [...this.streams].map((s) => ({
      runId: s.hello?.runId,
      queuedMessages: s.call.writableLength,
      pendingWeights: s.pendingWeights,
    }));
  }

  /** Attached trainer streams per run (side-car workers' streams not counted). */
  attachedCounts(): Map<string, number> {
    const out = new Map<string, number>();
    for (const s of this.streams) if (s.hello?.worker === false) out.set(s.hello.runId, (out.get(s.hello.runId) ?? 0) + 1);
    return out;
  }

  private attach(call: Call): void {
    const stream = new TrainerStream(
      call,
      this.options.maxStalledMs,
      (s) => {
        this.observer.rejected?.('MOTIVE_INGEST_STALLED');
        this.deps.log.warn(
          { runId: s.hello?.runId, rank: s.hello?.rank, maxStalledMs: this.options.maxStalledMs },
          'trainer stream stalled, reset',
        );
        finish();
      },
      (s) => {
        const run = s.hello === undefined ? undefined : this.deps.store.run(s.hello.runId);
        return run === undefined ? undefined : this.deps.weighting.snapshot(run);
      },
    );
    this.streams.add(stream);
    const finish = (): void => {
      stream.detach();
      if (!this.streams.delete(stream)) return;
      stream.closed = true;
      if (stream.hello?.worker === false) this.observer.attached?.(stream.hello.runId, -1);
    };
    call.on('data', (msg: TrainerMessageMsg) => {
      call.pause();
      this.handle(stream, msg, ingestBatchAcked.hasSubscribers ? performance.now() : 0)
        .catch((err: unknown) => {
          this.deps.log.error({ err }, 'stream handler failed');
          // A known failure keeps its code (a client retries by it, docs/wire.md).
          stream.fail(isMotiveError(err) ? err : new MotiveError('MOTIVE_INGEST_INTERNAL', describeError(err)), true);
        })
        .finally(() => {
          // While draining, stop reading: what arrived is committed and acknowledged first.
          if (stream.closed || this.draining) return;
          if (stream.inflightBytes > this.options.streamInflightBytes) stream.waitingForRoom = true;
          else call.resume();
        });
    });
    call.on('end', () => {
      finish();
      stream.end();
    });
    call.on('error', () => finish());
    call.on('close', () => finish());
  }

  /** `receivedAt`: when the message was read off the stream (performance.now(), while Acks are heard). */
  private async handle(stream: TrainerStream, msg: TrainerMessageMsg, receivedAt: number): Promise<void> {
    if (stream.closed) return;
    // A message read while draining is left unprocessed (never acknowledged): the trainer
    // resends it to the next daemon. The stream stays open until drain() has sent its acks.
    if (this.draining) return;
    if (msg.body === 'hello') {
      if (stream.hello !== undefined) {
        stream.fail(new MotiveError('MOTIVE_INGEST_DUPLICATE_HELLO'), true);
        return;
      }
      await this.onHello(stream, msg.hello);
      return;
    }
    const hello = stream.hello;
    if (hello === undefined) {
      this.observer.rejected?.('MOTIVE_INGEST_HELLO_REQUIRED');
      stream.fail(new MotiveError('MOTIVE_INGEST_HELLO_REQUIRED'), true);
      return;
    }
    if (msg.body === 'batch') {
      const batchMsg = msg.batch;
      let decoded;
      try {
        decoded = decodeBatch(
          batchMsg,
          hello.dim,
          hello.dtype,
          this.options,
          this.deps.engine.sketchBuffers,
          stream.normalize,
          hello.featureNames.length,
          hello.worker,
        );
      } catch (err) {
        this.rejectItem(stream, err, Number.isSafeInteger(batchMsg.seq) ? batchMsg.seq : 0);
        return;
      }
      if (decoded.seq < stream.lastSeq) {
        this.rejectItem(stream, new MotiveError('MOTIVE_INGEST_SEQ_ORDER', `seq ${decoded.seq} after ${stream.lastSeq}`), decoded.seq);
        return;
      }
      // A worker answers jobs newest first (docs/wire.md): its steps may go down.
      if (decoded.step < stream.lastStep && !hello.worker) {
        this.rejectItem(
          stream,
          new MotiveError('MOTIVE_INGEST_STEP_BACKWARDS', `step ${decoded.step} after ${stream.lastStep}`),
          decoded.seq,
        );
        return;
      }
      stream.lastSeq = decoded.seq;
      stream.lastStep = decoded.step;
      const bytes = batchMsg.sketches.length + 64 * decoded.sampleIds.length;
      stream.inflightBytes += bytes;
      const at = { runId: hello.runId, rank: hello.rank, seq: decoded.seq };
      ingestBatchAccepted.publish(this, { ...at, samples: decoded.sampleIds.length, bytes: batchMsg.sketches.length });
      const sentAt = performance.now();
      // Acknowledged once durable; the engine applies it to memory right after the Ack leaves.
      this.deps.engine
        .submitBatch({ runId: hello.runId, rank: hello.rank, ...decoded, bytes }, () => {
          stream.send({ ack: { seq: decoded.seq } });
          ingestBatchAcked.publish(this, { ...at, receivedAt, submittedAt: sentAt, ackedAt: performance.now() });
        })
        .catch((err: unknown) => this.rejectItem(stream, err, decoded.seq))
        .finally(() => this.release(stream, bytes));
      return;
    }
    if (msg.body === 'queries') {
      let decoded;
      try {
        decoded = decodeQueries(msg.queries, hello.dim, hello.dtype, this.options);
      } catch (err) {
        this.rejectItem(stream, err, 0);
        return;
      }
      const bytes = msg.queries.sketches.length;
      stream.inflightBytes += bytes;
      this.deps.engine
        .submitQueries({ runId: hello.runId, ...decoded, bytes })
        .catch((err: unknown) => this.rejectItem(stream, err, 0))
        .finally(() => this.release(stream, bytes));
      return;
    }
    if (msg.body === 'heartbeat') return;
    this.rejectItem(stream, new MotiveError('MOTIVE_INGEST_UNKNOWN_MESSAGE'), 0);
  }

  private rejectItem(stream: TrainerStream, err: unknown, seq: number): void {
    const e = isMotiveError(err) ? err : new MotiveError('MOTIVE_INGEST_INTERNAL', describeError(err), { cause: err });
    this.observer.rejected?.(e.code);
    if (!isMotiveError(err)) this.deps.log.error({ err }, 'batch failed');
    // The stream cannot go on after a failed commit; the trainer reconnects and resends.
    const fatal = e.code === 'MOTIVE_STORE_COMMIT' || e.code === 'MOTIVE_STORE_FULL' || e.code === 'MOTIVE_INGEST_INTERNAL';
    stream.fail(e, fatal, seq);
  }

  private release(stream: TrainerStream, bytes: number): void {
    stream.inflightBytes -= bytes;
    if (stream.waitingForRoom && stream.inflightBytes <= this.options.streamInflightBytes && !stream.closed && !this.draining) {
      stream.waitingForRoom = false;
      stream.call.resume();
    }
  }

  private async onHello(stream: TrainerStream, raw: HelloMsg): Promise<void> {
    let hello: ValidHello;
    try {
      hello = validateHello(raw, this.options, this.options.auth);
    } catch (err) {
      const e = isMotiveError(err) ? err : new MotiveError('MOTIVE_INGEST_HELLO_INVALID', describeError(err));
      this.observer.rejected?.(e.code);
      this.deps.log.warn({ code: e.code, runId: raw.runId.slice(0, 128) }, 'hello refused');
      stream.fail(e, true);
      return;
    }
    let existing = this.deps.store.run(hello.runId);
    // Runs still being created count too: parallel Hellos for new runs are checked one by one,
    // with no await between a check and the creation it admits.
    if (existing === undefined && !this.creatingRuns.has(hello.runId) && this.runCount() >= this.options.maxRuns) {
      const e = new MotiveError('MOTIVE_INGEST_LIMIT_RUNS', `limit ${this.options.maxRuns}`);
      this.observer.rejected?.(e.code);
      stream.fail(e, true);
      return;
    }
    if (existing === undefined && hello.worker) {
      // A worker never creates a run: the trainer's Hello fixes its world size.
      const e = new MotiveError('MOTIVE_INGEST_HELLO_INVALID', `run ${hello.runId} does not exist (a worker attaches to a trainer's run)`);
      this.observer.rejected?.(e.code);
      stream.fail(e, true);
      return;
    }
    existing ??= await this.createRun(hello);
    let run = existing;
    const p = run.info.projection;
    if (
      p.fingerprint !== hello.projection.fingerprint ||
      p.dim !== hello.dim ||
      p.kind !== hello.projection.kind ||
      p.seed !== hello.projection.seed
    ) {
      const e = new MotiveError(
        'MOTIVE_INGEST_PROJECTION_MISMATCH',
        `run ${hello.runId} uses ${p.kind}/dim ${p.dim}/fingerprint ${p.fingerprint}, Hello has ${hello.projection.kind}/dim ${hello.dim}/fingerprint ${hello.projection.fingerprint}`,
      );
      this.observer.rejected?.(e.code);
      stream.fail(e, true);
      return;
    }
    if (hello.featureNames.length > 0 && !(await this.fixFeatureNames(stream, run, hello))) return;
    run = this.deps.store.run(hello.runId) ?? run;
    if (hello.worldSize !== run.info.worldSize && !hello.worker) {
      const e = new MotiveError(
        'MOTIVE_INGEST_WORLD_SIZE',
        `run ${hello.runId} has world_size ${run.info.worldSize}, Hello has world_size ${hello.worldSize} (rank ${hello.rank})`,
      );
      this.observer.rejected?.(e.code);
      stream.fail(e, true);
      return;
    }
    stream.hello = hello;
    stream.normalize = run.info.scoreMode === 'cosine';
    if (!hello.worker) this.observer.attached?.(hello.runId, 1);
    this.deps.log.info({ runId: hello.runId, rank: hello.rank, client: hello.client }, 'trainer attached');
    stream.send({
      welcome: {
        // A worker's batches are deduplicated by job, not by seq: it resends all it holds.
        lastCommittedSeq: hello.worker ? 0 : (run.commits.get(hello.rank) ?? 0),
        weightsVersion: run.weightsVersion,
        daemon: DAEMON_NAME,
        queryVersion: run.latestQuerySet()?.version ?? 0,
      },
    });
    if (hello.applyWeights && this.deps.weighting.pushes) {
      stream.pushWeights(this.deps.weighting.snapshot(run));
    }
  }

  /**
   * The run's feature names are fixed by the first Hello that carries any; a later Hello with
   * other names is refused (one without names may attach, and sends no features).
   */
  private async fixFeatureNames(stream: TrainerStream, run: RunState, hello: ValidHello): Promise<boolean> {
    try {
      await this.deps.store.setFeatureNames(run, hello.featureNames);
      return true;
    } catch (err) {
      const e = isMotiveError(err) ? err : new MotiveError('MOTIVE_INGEST_INTERNAL', describeError(err), { cause: err });
      this.observer.rejected?.(e.code);
      stream.fail(e, true);
      return false;
    }
  }

  /** Runs held and runs being created, each once. */
  private runCount(): number {
    const ids = new Set(this.creatingRuns.keys());
    for (const r of this.deps.store.runs()) ids.add(r.info.id);
    return ids.size;
  }

  private createRun(hello: ValidHello): Promise<RunState> {
    const pending = this.creatingRuns.get(hello.runId);
    if (pending !== undefined) return pending;
    const created = (async () => {
      const run = await this.deps.store.createRun({
        id: hello.runId,
        dim: hello.dim,
        dtype: hello.dtype,
        projection: hello.projection,
        scoreMode: this.options.scoreMode,
        worldSize: hello.worldSize,
        createdAtMs: Date.now(),
      });
      this.deps.log.info({ runId: hello.runId, dim: hello.dim }, 'run created');
      return run;
    })();
    this.creatingRuns.set(hello.runId, created);
    return created.finally(() => this.creatingRuns.delete(hello.runId));
  }

  private pushWeights(e: WeightUpdateEvent): void {
    if (!this.deps.weighting.pushes || e.sampleIds.length === 0) return;
    for (const s of this.streams) {
      if (s.hello?.runId !== e.runId || !s.hello.applyWeights) continue;
      s.pushWeights(e);
    }
  }

  /** Ends every stream attached to `runId` (the run was deleted). */
  detachRun(runId: string): void {
    for (const s of this.streams) if (s.hello?.runId === runId) s.fail(new MotiveError('MOTIVE_INGEST_RUN_DELETED', runId), true);
  }

  /**
   * Graceful drain: refuse new work, let queued batches commit and be acknowledged (bounded by
   * `graceMs`), then close every stream and the server.
   */
  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.deps.engine.drained(),
      new Promise<void>((r) => {
        timer = setTimeout(r, graceMs);
      }),
    ]);
    clearTimeout(timer);
    // Let the acknowledgements written just now leave before the streams end.
    await new Promise((r) => setImmediate(r));
    for (const s of this.streams) s.fail(new MotiveError('MOTIVE_INGEST_SHUTTING_DOWN'), true);
    await new Promise<void>((resolve) => {
      const force = setTimeout(
        () => {
          this.server.forceShutdown();
          resolve();
        },
        Math.min(graceMs, 2000),
      );
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }

  /** Immediate stop, no drain. */
  close(): void {
    this.draining = true;
    this.server.forceShutdown();
  }
}
