/**
 * What the weighting service publishes on `node:diagnostics_channel` (docs/observability.md,
 * "Channels"): every message is `{ source, event }`, `source` the `WeightingService`.
 */
import { MotiveChannel } from '../shared/index.js';
import type { WeightUpdateEvent } from './service.js';

/** One stretch of a weights recompute on the main thread (between two yields to the event loop). */
export interface RecomputeStretch {
  readonly runId: string;
  /** `performance.now()` ms when the stretch began and ended. */
  readonly start: number;
  readonly end: number;
}

/** `motive:weighting:pushed`: weights for the trainers, once durable (a batch's with its Acks, a recompute's after its commit). */
export const weightsPushed = new MotiveChannel<WeightUpdateEvent>('motive:weighting:pushed');

/** `motive:weighting:update`: a new weights version announced, once applied to memory. */
export const weightsUpdated = new MotiveChannel<WeightUpdateEvent>('motive:weighting:update');

/** `motive:weighting:recompute`: every stretch of a recompute on the main thread. */
export const recomputeStretches = new MotiveChannel<RecomputeStretch>('motive:weighting:recompute');
