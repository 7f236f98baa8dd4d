/**
 * One trainer's Attach stream, as the daemon writes to it. Weight updates respect back-pressure:
 * while a few messages already wait to enter the HTTP/2 stream (the trainer is not reading and its
 * flow-control window is spent), updates are not written but merged into one pending update (each
 * sample's latest weight). Once there is room the stream gets the run's weights as they are then,
 * as a full snapshot (the merged update only when the run is gone): so a trainer that reads slowly
 * still ends with the run's weights, even where updates went out in another order than they were
 * applied, and one that stops reading costs the daemon a few messages and at most a weight per
 * sample of its run. A stream whose weights wait longer than `maxStalledMs` is reset (RST_STREAM
 * ENHANCE_YOUR_CALM: the trainer sees RESOURCE_EXHAUSTED), which frees what it buffered; the
 * trainer reconnects and gets a full snapshot with its Welcome.
 */
import { constants as h2 } from 'node:http2';
import type * as grpc from '@grpc/grpc-js';
import type { MotiveError } from '../shared/index.js';
import type { ValidHello } from './validate.js';
import type { DaemonMessageInit, TrainerMessageMsg } from './proto.js';

type Call = grpc.ServerDuplexStream<TrainerMessageMsg, DaemonMessageInit>;

/** A weight update as ingest pushes it. */
export interface WeightPush {
  readonly version: number;
  readonly full: boolean;
  readonly sampleIds: readonly string[];
  readonly weights: readonly number[];
}

/** Weights waiting for the stream to drain: the newest version, and each sample's latest weight. */
interface PendingWeights {
  version: number;
  full: boolean;
  readonly weights: Map<string, number>;
}

/** How often a stream holding merged weights is looked at for room (and for its stall bound), ms. */
const RETRY_MS = 25;
/**
 * Messages that may wait in a call's queue (not yet taken by HTTP/2) before weight updates are
 * merged instead of written. A reading trainer's queue holds one or two (an Ack and the batch
 * weights written right after it); more means the trainer has stopped reading.
 */
export const MAX_QUEUED_MESSAGES = 4;

export class TrainerStream {
  hello: ValidHello | undefined;
  /** Whether the attached run scores by cosine: its sketches are normalised as they are decoded. */
  normalize = false;
  /** Highest seq and step received on this stream: within one stream both must not go down. */
  lastSeq = 0;
  lastStep = -1;
  inflightBytes = 0;
  waitingForRoom = false;
  closed = false;
  readonly call: Call;
  /** `call.write` returned false and no `drain` came yet. */
  private full = false;
  /** Since when weights have been waiting for room (Date.now ms); undefined while none wait. */
  private blockedSinceMs: number | undefined;
  private pending: PendingWeights | undefined;
  private retry: NodeJS.Timeout | undefined;
  private readonly maxStalledMs: number;
  private readonly onStalled: (stream: TrainerStream) => void;
  /** The run's weights as they are in memory now (a full snapshot), for a stream that fell behind. */
  private readonly snapshot: (stream: TrainerStream) => WeightPush | undefined;

  constructor(
    call: Call,
    maxStalledMs: number,
    onStalled: (stream: TrainerStream) => void,
    snapshot: (stream: TrainerStream) => WeightPush | undefined,
  ) {
    this.call = call;
    this.maxStalledMs = maxStalledMs;
    this.onStalled = onStalled;
    this.snapshot = snapshot;
    call.on('drain', () => {
      this.full = false;
      this.tryFlush();
    });
  }

  /** Whether weights wait for the trainer to read (for tests and diagnostics). */
  get blocked(): boolean {
    return this.blockedSinceMs !== undefined;
  }

  /** Sample weights held back for this stream while it does not read. */
  get pendingWeights(): number {
    return this.pending?.weights.size ?? 0;
  }

  /**
   * Whether a weight update may be written now: fewer than {@link MAX_QUEUED_MESSAGES} messages
   * wait for HTTP/2 to take them. A trainer that does not read costs at most that many queued
   * messages and the merged update.
   */
  private get writable(): boolean {
    return !this.full && this.call.writableLength < MAX_QUEUED_MESSAGES;
  }

  send(msg: DaemonMessageInit): void {
    if (this.closed) return;
    try {
      if (!this.call.write(msg)) this.full = true;
    } catch {
      this.closed = true;
    }
  }

  /** Writes a weight update, or merges it into the pending one while the stream has no room. */
  pushWeights(u: WeightPush): void {
    if (this.closed) return;
    if (this.pending === undefined && this.writable) {
      this.send({ weights: { version: u.version, full: u.full, sampleIds: [...u.sampleIds], weights: [...u.weights] } });
      return;
    }
    if (this.pending === undefined || u.full) this.pending = { version: u.version, full: u.full, weights: new Map() };
    const p = this.pending;
    p.version = Math.max(p.version, u.version);
    u.sampleIds.forEach((id, i) => p.weights.set(id, u.weights[i] as number));
    this.blockedSinceMs ??= Date.now();
    this.tryFlush();
  }

  fail(err: MotiveError, fatal: boolean, seq = 0): void {
    this.send({ error: { code: err.code, message: err.message, fatal, seq } });
    if (fatal) this.end();
  }

  end(): void {
    this.stopRetry();
    if (this.closed) return;
    this.closed = true;
    try {
      this.call.end();
    } catch {
      // already gone
    }
  }

  /** The call is gone: drop what waits for it. */
  detach(): void {
    this.stopRetry();
    this.closed = true;
    this.pending = undefined;
  }

  /** Sends the merged update once there is room; resets the stream once it waited `maxStalledMs`. */
  private tryFlush(): void {
    this.stopRetry();
    const p = this.pending;
    if (this.closed || p === undefined) return;
    if (this.writable) {
      this.pending = undefined;
      this.blockedSinceMs = undefined;
      // The run's weights as they are now, in full: what the merged updates say, and also any
      // change applied meanwhile whose update went out in another order than it was applied.
      const snap = this.snapshot(this);
      const u =
        snap !== undefined && snap.version >= p.version
          ? snap
          : { version: p.version, full: p.full, sampleIds: [...p.weights.keys()], weights: [...p.weights.values()] };
      this.send({ weights: { version: u.version, full: u.full, sampleIds: [...u.sampleIds], weights: [...u.weights] } });
      return;
    }
    if (Date.now() - (this.blockedSinceMs ?? Date.now()) >= this.maxStalledMs) {
      this.closed = true;
      this.pending = undefined;
      this.onStalled(this);
      resetCall(this.call, h2.NGHTTP2_ENHANCE_YOUR_CALM);
      return;
    }
    this.retry = setTimeout(() => this.tryFlush(), RETRY_MS);
    this.retry.unref();
  }

  private stopRetry(): void {
    if (this.retry !== undefined) clearTimeout(this.retry);
    this.retry = undefined;
  }
}

/**
 * Resets the HTTP/2 stream under a grpc-js server call, discarding what it buffered. grpc-js has
 * no public way to do this (ending the call queues its status behind the unread messages), so
 * this walks to the call's HTTP/2 stream; when that fails it ends the call instead.
 */
function resetCall(call: Call, code: number): void {
  type Link = { call?: Link; nextCall?: Link; stream?: { close?: (code: number) => void } };
  let at: Link | undefined = (call as unknown as Link).call;
  for (let hops = 0; at !== undefined && hops < 8; hops++) {
    if (typeof at.stream?.close === 'function') {
      at.stream.close(code);
      return;
    }
    at = at.nextCall;
  }
  try {
    call.end();
  } catch {
    // already gone
  }
}
