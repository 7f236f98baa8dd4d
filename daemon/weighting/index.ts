export { WeightingService, type WeightingOptions, type WeightUpdateEvent } from './service.js';
export { computeWeights, type WeightPolicyOptions } from './policy.js';
export { sampleSignal, type FusedOptions, type SignalStats } from './fused.js';
export { weightsPushed, weightsUpdated, recomputeStretches, type RecomputeStretch } from './channels.js';
