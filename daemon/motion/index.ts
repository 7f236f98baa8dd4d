export { lkFlowModel, LK_DEFAULTS, LK_OPSET, type LkFlowModelOptions } from './lk-flow-model.js';
export { FlowEstimator, SHIPPED_FLOW_MODEL, type FlowEstimatorOptions } from './flow-estimator.js';
export {
  computeDescriptors,
  topFivePercentMean,
  DESCRIPTOR_NAMES,
  DESCRIPTOR_DEFAULTS,
  VBENCH_DYNAMIC_THRESHOLD,
  type MotionDescriptors,
  type DescriptorOptions,
} from './descriptors.js';
export { probeVideo, decodeGrey, DEFAULT_TOOLS, type FfmpegTools, type VideoInfo, type DecodeOptions } from './ffmpeg.js';
export {
  listClips,
  splitCsvLine,
  profileClip,
  profileAll,
  hashFile,
  analysisSize,
  PROFILER_DEFAULTS,
  VIDEO_EXTENSIONS,
  type ClipSource,
  type ClipProfile,
  type ClipOutcome,
  type ProfilerOptions,
  type ProfileAllOptions,
} from './profiler.js';
export { explain, spearman, aucOf, ranks, type Explanation, type DescriptorSeparation, type ScoredProfile } from './explain.js';
