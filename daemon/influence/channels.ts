/**
 * What the engine publishes on `node:diagnostics_channel` (docs/observability.md, "Channels"), the
 * way undici publishes its request events: subscribers (metrics, tracing, a test) hear of every
 * group commit without the engine calling them. Several engines can share a process (tests start
 * daemons side by side), so every message names the engine it came from, and a subscriber keeps
 * to its own.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import type { CommitEvent } from './engine-types.js';

/** One group commit of one run, published once the group is applied to memory. */
export const ENGINE_COMMIT_CHANNEL = 'motive:engine:commit';

/** The message on {@link ENGINE_COMMIT_CHANNEL}. */
export interface EngineCommitMessage {
  /** The engine that committed (an `InfluenceEngine`). */
  readonly engine: object;
  readonly event: CommitEvent;
}

export const engineCommitChannel = diagnosticsChannel.channel(ENGINE_COMMIT_CHANNEL);

/**
 * Subscribes `onEvent` to the commits of `engine` alone; returns the unsubscribe. The channel
 * reports a subscriber's exception as uncaught, so a throwing `onEvent` is caught and handed to
 * `onError` instead.
 */
export function subscribeCommits(engine: object, onEvent: (e: CommitEvent) => void, onError: (err: unknown) => void): () => void {
  const handler = (message: unknown): void => {
    const m = message as EngineCommitMessage;
    if (m.engine !== engine) return;
    try {
      onEvent(m.event);
    } catch (err) {
      onError(err);
    }
  };
  diagnosticsChannel.subscribe(ENGINE_COMMIT_CHANNEL, handler);
  return () => {
    diagnosticsChannel.unsubscribe(ENGINE_COMMIT_CHANNEL, handler);
  };
}
