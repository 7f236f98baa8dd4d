/**
 * Named `node:diagnostics_channel` channels (docs/observability.md, "Channels"), the way undici
 * publishes its request events: a subsystem publishes what happened and whoever cares (metrics,
 * the live feed, the Ack-path trace, a test) subscribes, without the publisher calling them.
 *
 * Several daemons can share a process (tests start them side by side), so every message names
 * the object that published it, `{ source, event }`, and a subscriber keeps to its own source.
 *
 * Ingest's channels are declared here rather than in `ingest/`: their subscribers, the metrics and
 * the trace, may not import `ingest/` (docs/architecture.md, the layer table), and their payloads
 * are plain numbers and ids.
 */
import diagnosticsChannel from 'node:diagnostics_channel';

/** What every {@link MotiveChannel} carries: the publishing object and its event. */
export interface SourcedMessage<E> {
  readonly source: object;
  readonly event: E;
}

/** A named channel whose messages are `{ source, event }` with events of type `E`. */
export class MotiveChannel<E> {
  readonly name: string;
  private readonly channel: diagnosticsChannel.Channel;

  constructor(name: string) {
    this.name = name;
    this.channel = diagnosticsChannel.channel(name);
  }

  /** Whether anyone listens: a publisher tests it before building an event that costs something. */
  get hasSubscribers(): boolean {
    return this.channel.hasSubscribers;
  }

  /** Publishes `event` from `source`, synchronously to every subscriber. */
  publish(source: object, event: E): void {
    if (this.channel.hasSubscribers) this.channel.publish({ source, event } satisfies SourcedMessage<E>);
  }

  /**
   * Subscribes `onEvent` to the events of `source` (of every source when undefined); returns the
   * unsubscribe. The channel reports a subscriber's exception as uncaught, so a throwing
   * `onEvent` is caught and handed to `onError` instead.
   */
  subscribe(source: object | undefined, onEvent: (e: E) => void, onError: (err: unknown) => void): () => void {
    const handler = (message: unknown): void => {
      const m = message as SourcedMessage<E>;
      if (source !== undefined && m.source !== source) return;
      try {
        onEvent(m.event);
      } catch (err) {
        onError(err);
      }
    };
    diagnosticsChannel.subscribe(this.name, handler);
    return () => {
      diagnosticsChannel.unsubscribe(this.name, handler);
    };
  }
}

/** A batch decoded, checked and handed to the engine (published by the `IngestServer`). */
export interface IngestBatchAccepted {
  readonly runId: string;
  readonly rank: number;
  readonly seq: number;
  /** Samples (per-sample sketches) in the batch. */
  readonly samples: number;
  /** Bytes of sketch payload. */
  readonly bytes: number;
}

/** A batch's Ack sent, its batch durable. Times are `performance.now()` ms of the daemon's process. */
export interface IngestBatchAcked {
  readonly runId: string;
  readonly rank: number;
  readonly seq: number;
  /** When the batch was read off its stream. */
  readonly receivedAt: number;
  /** When it was handed to the engine (accepted). */
  readonly submittedAt: number;
  /** When its Ack was sent. */
  readonly ackedAt: number;
}

/** `motive:ingest:batch-accepted`: every batch ingest accepts. */
export const ingestBatchAccepted = new MotiveChannel<IngestBatchAccepted>('motive:ingest:batch-accepted');

/** `motive:ingest:batch-acked`: every batch acknowledged, once durable. */
export const ingestBatchAcked = new MotiveChannel<IngestBatchAcked>('motive:ingest:batch-acked');
