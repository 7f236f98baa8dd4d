export {
  InfluenceEngine,
  type BatchSubmission,
  type QuerySubmission,
  type SubmitOutcome,
  type CommitEvent,
  type CommitStages,
  type InfluenceEngineOptions,
  type BatchWeigher,
} from './engine.js';
export { MatMulKernel, type MatMulKernelOptions } from './matmul-kernel.js';
export { RunViews, type SampleView, type SampleOrder } from './views.js';
export {
  DistributionCache,
  computeDistribution,
  weightCounts,
  SCORE_BINS,
  SCORE_QUANTILES,
  WEIGHT_BUCKETS,
  type RunDistribution,
} from './distribution.js';
export { decodeFiniteSketches, dtypeBytes, SketchBuffers } from './sketch-decode.js';
export { allFinite } from './math.js';
export { ENGINE_COMMIT_CHANNEL, subscribeCommits, type EngineCommitMessage } from './channels.js';
