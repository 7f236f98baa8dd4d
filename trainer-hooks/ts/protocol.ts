/**
 * The trainer side of the `Attach` stream protocol without I/O (docs/wire.md, "Ordering"): batch
 * sequence numbers, the batches not yet acknowledged, the query sets not yet confirmed, and what a
 * new stream must be sent again after its Welcome. No stream, timer or event here: `MotiveClient`
 * (client.ts) calls it and writes what it returns, so the rules are tested without a daemon
 * (test/unit/client/protocol.test.ts). The Python client keeps the same rules in
 * `motive_hooks/protocol.py`; both replay schemas/stream-protocol.scenarios.json, so they cannot
 * drift apart.
 */

/** A message kept for resending; the protocol never looks inside one. */
export interface Kept<M> {
  readonly seq: number;
  readonly message: M;
}

/** A batch kept for resending, with how to build it again under another seq. */
interface KeptBatch<M> extends Kept<M> {
  readonly make: (seq: number) => M;
}

export class StreamProtocol<M> {
  private nextSeq = 1;
  private unacked: Array<KeptBatch<M>> = [];
  /**
   * No Welcome yet: the run's committed seq is unknown, so the batches numbered meanwhile are
   * provisional and the first Welcome numbers them above it (else a resumed run's daemon would
   * take them for batches it already committed).
   */
  private welcomed = false;
  /**
   * Query sets not yet known to be committed, each with the seq of the first batch sent after it:
   * the daemon commits a stream's messages in order, so an Ack at or past that seq confirms it.
   */
  private querySets: Array<Kept<M>> = [];

  /** @param maxUnconfirmedQueries query sets kept for resend, the oldest forgotten first. */
  constructor(private readonly maxUnconfirmedQueries: number) {}

  /** Batches sent (or queued while disconnected) and not yet acknowledged. */
  get pending(): number {
    return this.unacked.length;
  }

  /** Query sets kept for resend. */
  get unconfirmedQueries(): number {
    return this.querySets.length;
  }

  /** Numbers a new batch and keeps `make(seq)` until it is acknowledged; returns it. */
  batch(make: (seq: number) => M): Kept<M> {
    const seq = this.nextSeq++;
    const kept = { seq, message: make(seq), make };
    this.unacked.push(kept);
    return kept;
  }

  /** Keeps a query set sent now until a later batch's Ack confirms it. */
  queries(message: M): void {
    this.querySets.push({ seq: this.nextSeq, message });
    if (this.querySets.length > this.maxUnconfirmedQueries) this.querySets.shift();
  }

  /**
   * A Welcome arrived on a new stream: forgets what it shows committed, continues numbering
   * above it, and returns what to send again, in order (the query sets, then the batches).
   */
  welcome(lastCommittedSeq: number): M[] {
    if (!this.welcomed) {
      // Provisional numbers started at 1: shifting every one by the committed seq keeps their
      // order and each query set's place among the batches.
      this.welcomed = true;
      this.nextSeq += lastCommittedSeq;
      this.unacked = this.unacked.map((b) => ({ seq: b.seq + lastCommittedSeq, message: b.make(b.seq + lastCommittedSeq), make: b.make }));
      this.querySets = this.querySets.map((q) => ({ seq: q.seq + lastCommittedSeq, message: q.message }));
      return [...this.querySets.map((q) => q.message), ...this.unacked.map((b) => b.message)];
    }
    this.dropThrough(lastCommittedSeq);
    if (this.nextSeq <= lastCommittedSeq) this.nextSeq = lastCommittedSeq + 1;
    return [...this.querySets.map((q) => q.message), ...this.unacked.map((b) => b.message)];
  }

  /**
   * An Ack of `seq` acknowledges every batch up to it (docs/wire.md, "Acknowledgement"): the
   * daemon commits a stream's batches in order and takes any seq at or below its last committed
   * one for a duplicate. Returns how many kept batches it acknowledged.
   */
  ack(seq: number): number {
    return this.dropThrough(seq);
  }

  /** A non-fatal Error for batch `seq`: the batch is forgotten (never resent). */
  reject(seq: number): boolean {
    const i = this.unacked.findIndex((b) => b.seq === seq);
    if (i >= 0) this.unacked.splice(i, 1);
    return i >= 0;
  }

  /** Forgets the batches and query sets that `committedSeq` shows committed; returns how many batches. */
  private dropThrough(committedSeq: number): number {
    let dropped = 0;
    while (this.unacked.length > 0 && (this.unacked[0] as Kept<M>).seq <= committedSeq) {
      this.unacked.shift();
      dropped++;
    }
    while (this.querySets.length > 0 && (this.querySets[0] as Kept<M>).seq <= committedSeq) this.querySets.shift();
    return dropped;
  }
}
