/**
 * TypeScript trainer client for Motive's `Attach` stream: attaches as one rank, sends sketch
 * batches and query sets with backpressure, resends unacknowledged batches after a reconnect
 * (exactly-once is the daemon's job, keyed by seq), and keeps the live weights the daemon pushes.
 */
import { EventEmitter, once } from 'node:events';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { RETRYABLE_CODES } from './errors.js';
import { StreamProtocol } from './protocol.js';
import {
  WIRE_DECODE_OPTIONS,
  type DaemonMessageMsg,
  type ErrorMsg,
  type QuerySetInit,
  type SketchBatchInit,
  type TrainerMessageInit,
  type WeightUpdateMsg,
  type WelcomeMsg,
} from './wire.js';

/**
 * The defaults this client shares with the Python client (`motive_hooks.client.MotiveClient`;
 * docs/wire.md, "Client defaults"), so that ranks of both attach to one run on defaults alike; a
 * unit test reads both clients and fails when they differ.
 */
export const CLIENT_DEFAULTS = {
  /** Half the bytes of float32 on the wire and in the daemon's log; the ingest targets are measured in it. */
  dtype: 'float16',
  /** The Python hook's sketcher's projection (`sketch.PROJECTION_KIND`). */
  projectionKind: 'logra-gaussian',
  seed: 0,
  fingerprint: '',
  applyWeights: true,
  /** Batches kept for resend until acknowledged; at the cap, sending waits for Acks. */
  maxUnacked: 1024,
  /** Query sets kept for resend until a later batch's Ack confirms them (the oldest forgotten first). */
  maxUnconfirmedQueries: 256,
  /** Reconnect delay after a failed attempt, doubling up to `maxReconnectDelayMs`. */
  reconnectDelayMs: 100,
  maxReconnectDelayMs: 2000,
} as const;

/** Query sets kept for resend until a later batch's Ack confirms them. */
export const MAX_UNCONFIRMED_QUERIES = CLIENT_DEFAULTS.maxUnconfirmedQueries;

const PROTO_PATH = fileURLToPath(new URL('../../schemas/motive.proto', import.meta.url));

export type ClientDType = 'float32' | 'float16';

export interface MotiveClientOptions {
  /** host:port of the daemon's gRPC listener. */
  readonly address: string;
  readonly runId: string;
  /** Sketch length k. */
  readonly dim: number;
  readonly rank?: number;
  readonly worldSize?: number;
  /** Wire encoding of sketch rows. Default float16 ({@link CLIENT_DEFAULTS}). */
  readonly dtype?: ClientDType;
  readonly token?: string;
  readonly projection?: { kind: string; seed: number | string; fingerprint: string };
  /** Ask the daemon for WeightUpdates. Default true. */
  readonly applyWeights?: boolean;
  /** Names of the per-clip features `send` may carry (docs/wire.md); none by default. */
  readonly featureNames?: readonly string[];
  /** Most unacknowledged batches before `send` waits. Default 1024. */
  readonly maxUnacked?: number;
  /** Delay after the first failed reconnect attempt in ms, doubling after each further one. Default 100. */
  readonly reconnectDelayMs?: number;
  /** Longest delay between reconnect attempts in ms. Default 2000. */
  readonly maxReconnectDelayMs?: number;
  /**
   * Give up reconnecting after this long without a Welcome (ms). Default 60000. The Python client
   * never gives up (it must not fail a training loop); this one serves scripts, which should.
   */
  readonly reconnectTimeoutMs?: number;
  /** Connect over TLS, trusting this PEM CA (or the system roots when `ca` is omitted). */
  readonly tls?: { readonly ca?: Buffer };
}

/** The daemon's Welcome (`queryVersion`: the newest query-set version the run holds; number the next one above it). */
export type WelcomeInfo = WelcomeMsg;
/** A daemon Error message (docs/wire.md, "Error codes"). */
export type DaemonErrorInfo = ErrorMsg;
export type WeightUpdateInfo = WeightUpdateMsg;

type Stream = grpc.ClientDuplexStream<TrainerMessageInit, DaemonMessageMsg>;

/** A daemon error that ends the client (refused Hello and the like). */
export class MotiveClientError extends Error {
  override readonly name = 'MotiveClientError';
  readonly code: string;

  constructor(code: string, message: string) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}

let clientCtor: grpc.ServiceClientConstructor | undefined;
function attributionClient(): grpc.ServiceClientConstructor {
  if (clientCtor === undefined) {
    const def = protoLoader.loadSync(PROTO_PATH, WIRE_DECODE_OPTIONS);
    const pkg = grpc.loadPackageDefinition(def) as unknown as { motive: { v1: { Attribution: grpc.ServiceClientConstructor } } };
    clientCtor = pkg.motive.v1.Attribution;
  }
  return clientCtor;
}

/** Rounds float32 values to little-endian binary16 bytes. */
export function encodeFloat16Array(values: Float32Array): Buffer {
  const out = Buffer.allocUnsafe(values.length * 2);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < values.length; i++) {
    f[0] = values[i] as number;
    const x = u[0] as number;
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    let h: number;
    if (exp === 0xff) h = sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
    else {
      const e = exp - 112;
      if (e >= 31) h = sign | 0x7c00;
      else if (e <= 0) {
        if (e < -10) h = sign;
        else {
          mant |= 0x800000;
          const shift = 14 - e;
          let half = mant >>> shift;
          const rem = mant & ((1 << shift) - 1);
          const mid = 1 << (shift - 1);
          if (rem > mid || (rem === mid && half & 1)) half++;
          h = sign | half;
        }
      } else {
        let half = (e << 10) | (mant >>> 13);
        const rem = mant & 0x1fff;
        if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
        h = sign | half;
      }
    }
    out.writeUInt16LE(h, i * 2);
  }
  return out;
}

export class MotiveClient extends EventEmitter {
  readonly options: Required<Omit<MotiveClientOptions, 'token' | 'projection' | 'tls'>> &
    Pick<MotiveClientOptions, 'token' | 'projection' | 'tls'>;
  private readonly grpcClient: grpc.Client & { Attach(): Stream };
  private stream: Stream | undefined;
  /** Sequence numbers, unacknowledged batches and unconfirmed query sets (protocol.ts). */
  private readonly protocol = new StreamProtocol<TrainerMessageInit>(CLIENT_DEFAULTS.maxUnconfirmedQueries);
  private readonly weightMap = new Map<string, number>();
  private weightsVersionValue = 0;
  private closed = false;
  private fatal: MotiveClientError | undefined;
  private connected = false;
  private connecting: Promise<WelcomeInfo> | undefined;
  /** Batches the daemon rejected (non-fatal Error with a seq). */
  rejected = 0;
  /** Reconnects so far. */
  reconnects = 0;

  constructor(options: MotiveClientOptions) {
    super();
    this.options = {
      rank: 0,
      worldSize: 1,
      dtype: CLIENT_DEFAULTS.dtype,
      applyWeights: CLIENT_DEFAULTS.applyWeights,
      featureNames: [],
      maxUnacked: CLIENT_DEFAULTS.maxUnacked,
      reconnectDelayMs: CLIENT_DEFAULTS.reconnectDelayMs,
      maxReconnectDelayMs: CLIENT_DEFAULTS.maxReconnectDelayMs,
      reconnectTimeoutMs: 60000,
      ...options,
    };
    const Ctor = attributionClient();
    const credentials = options.tls === undefined ? grpc.credentials.createInsecure() : grpc.credentials.createSsl(options.tls.ca ?? null);
    this.grpcClient = new Ctor(options.address, credentials, {
      'grpc.max_send_message_length': 256 * 1024 * 1024,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
    }) as unknown as grpc.Client & { Attach(): Stream };
  }

  /** Opens the stream and waits for the Welcome. Reconnects happen by themselves afterwards. */
  connect(): Promise<WelcomeInfo> {
    this.connecting ??= this.openWithRetry().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  /** The live weights (samples not listed have weight 1). */
  weights(): ReadonlyMap<string, number> {
    return this.weightMap;
  }

  get weightsVersion(): number {
    return this.weightsVersionValue;
  }

  /** Seq numbers sent but not yet acknowledged. */
  get pending(): number {
    return this.protocol.pending;
  }

  /**
   * Registers a query-set version: sent now, and again after a reconnect until a later batch's Ack
   * confirms it (at most {@link MAX_UNCONFIRMED_QUERIES} kept, the oldest forgotten first).
   */
  setQueries(version: number, step: number, ids: string[], sketches: Float32Array, groups: string[] = []): void {
    const queries: QuerySetInit = { version, step, queryIds: ids, groups, sketches: this.encode(sketches) };
    this.protocol.queries({ queries });
    this.write({ queries });
  }

  /** Query sets kept for resend (not yet confirmed by an Ack). */
  get unconfirmedQuerySets(): number {
    return this.protocol.unconfirmedQueries;
  }

  /**
   * Sends one batch (`sketches` row-major [ids.length × dim]; `features`, when given, row-major
   * [ids.length × featureNames.length]); waits while `maxUnacked` batches are outstanding.
   * Resolves with the batch's seq once it is on the wire (not yet acknowledged).
   */
  async send(
    step: number,
    lr: number,
    ids: string[],
    sketches: Float32Array,
    losses: number[] = [],
    features: ArrayLike<number> = [],
  ): Promise<number> {
    this.throwIfFatal();
    while (this.protocol.pending >= this.options.maxUnacked) {
      await once(this, 'progress');
      this.throwIfFatal();
    }
    const batch: Omit<SketchBatchInit, 'seq'> = {
      step,
      lr,
      sampleIds: ids,
      sketches: this.encode(sketches),
      losses,
      features: Array.from(features),
    };
    const kept = this.protocol.batch((seq) => ({ batch: { seq, ...batch } }));
    if (this.connected) await this.writeWithBackpressure(kept.message);
    return kept.seq;
  }

  /** Resolves when every batch sent so far is acknowledged. */
  async flush(timeoutMs = 60000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.protocol.pending > 0) {
      this.throwIfFatal();
      if (Date.now() > deadline) throw new Error(`flush timed out with ${this.protocol.pending} unacknowledged batches`);
      // Wake on progress or every 100 ms, without leaving a listener behind.
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), 100);
      await once(this, 'progress', { signal: ac.signal }).catch(() => undefined);
      clearTimeout(timer);
    }
  }

  close(): void {
    this.closed = true;
    this.stream?.end();
    this.stream?.cancel();
    this.grpcClient.close();
    this.emit('progress');
  }

  private throwIfFatal(): void {
    if (this.fatal !== undefined) throw this.fatal;
    if (this.closed) throw new Error('client is closed');
  }

  private encode(values: Float32Array): Buffer {
    if (this.options.dtype === 'float16') return encodeFloat16Array(values);
    return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  }

  private write(msg: TrainerMessageInit): void {
    if (this.connected && this.stream !== undefined) this.stream.write(msg);
  }

  private async writeWithBackpressure(msg: TrainerMessageInit): Promise<void> {
    const s = this.stream;
    if (s === undefined || s.write(msg)) return;
    // Wait for drain, close or error, then remove all three listeners (no leak per blocked write).
    await new Promise<void>((resolve) => {
      const done = (): void => {
        s.off('drain', done);
        s.off('close', done);
        s.off('error', done);
        resolve();
      };
      s.on('drain', done);
      s.on('close', done);
      s.on('error', done);
    });
  }

  private async openWithRetry(): Promise<WelcomeInfo> {
    const deadline = Date.now() + this.options.reconnectTimeoutMs;
    let delay = this.options.reconnectDelayMs;
    for (;;) {
      this.throwIfFatal();
      try {
        return await this.open();
      } catch (err) {
        if (err instanceof MotiveClientError || this.closed) throw err;
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(this.options.maxReconnectDelayMs, delay * 2);
      }
    }
  }

  private open(): Promise<WelcomeInfo> {
    return new Promise<WelcomeInfo>((resolve, reject) => {
      const stream = this.grpcClient.Attach();
      this.stream = stream;
      let welcomed = false;
      stream.on('data', (msg: DaemonMessageMsg) => {
        if (msg.body === 'welcome') {
          welcomed = true;
          this.onWelcome(msg.welcome);
          resolve(msg.welcome);
        } else if (msg.body === 'ack') this.onAck(msg.ack.seq);
        else if (msg.body === 'weights') this.onWeights(msg.weights);
        else if (msg.body === 'error') {
          const e = msg.error;
          if (e.fatal) {
            const err = new MotiveClientError(e.code, e.message);
            if (RETRYABLE_CODES.has(e.code)) {
              // The daemon is going away or failed to commit: reconnect and resend.
              if (!welcomed) reject(new Error(`${e.code}: ${e.message}`));
            } else {
              this.fatal = err;
              if (!welcomed) reject(err);
            }
            this.emit('daemon-error', e);
            this.emit('progress');
          } else {
            this.onRejected(e);
          }
        }
      });
      const lost = (err?: Error): void => {
        if (this.stream !== stream) return;
        this.connected = false;
        this.stream = undefined;
        if (!welcomed) {
          reject(err ?? new Error('stream ended before Welcome'));
          return;
        }
        if (this.closed || this.fatal !== undefined) return;
        this.reconnects++;
        this.emit('disconnected', err);
        void this.connect().catch((e: unknown) => {
          this.fatal = e instanceof MotiveClientError ? e : new MotiveClientError('MOTIVE_CLIENT_RECONNECT', String(e));
          this.emit('progress');
        });
      };
      stream.on('error', (err: Error) => lost(err));
      stream.on('end', () => lost());
      stream.write({
        hello: {
          runId: this.options.runId,
          rank: this.options.rank,
          worldSize: this.options.worldSize,
          projection: {
            kind: this.options.projection?.kind ?? CLIENT_DEFAULTS.projectionKind,
            seed: this.options.projection?.seed ?? CLIENT_DEFAULTS.seed,
            dim: this.options.dim,
            fingerprint: this.options.projection?.fingerprint ?? CLIENT_DEFAULTS.fingerprint,
          },
          dtype: this.options.dtype === 'float16' ? 'FLOAT16' : 'FLOAT32',
          token: this.options.token ?? '',
          client: 'motive-ts/0.1.0',
          applyWeights: this.options.applyWeights,
          featureNames: [...this.options.featureNames],
        },
      });
    });
  }

  private onWelcome(w: WelcomeInfo): void {
    const resend = this.protocol.welcome(w.lastCommittedSeq);
    this.connected = true;
    for (const m of resend) this.stream?.write(m);
    this.emit('welcome', w);
    this.emit('progress');
  }

  private onAck(seq: number): void {
    if (this.protocol.ack(seq) > 0) this.emit('progress');
    this.emit('ack', seq);
  }

  private onRejected(e: DaemonErrorInfo): void {
    this.protocol.reject(e.seq);
    this.rejected++;
    this.emit('rejected', e);
    this.emit('progress');
  }

  private onWeights(u: WeightUpdateInfo): void {
    if (u.full) this.weightMap.clear();
    u.sampleIds.forEach((id, i) => {
      const w = u.weights[i] as number;
      if (w === 1) this.weightMap.delete(id);
      else this.weightMap.set(id, w);
    });
    this.weightsVersionValue = u.version;
    this.emit('weights', u);
  }
}
