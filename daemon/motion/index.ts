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
  profileAndPreview,
  profileAll,
  hashFile,
  analysisSize,
  PROFILER_DEFAULTS,
  VIDEO_EXTENSIONS,
  type ClipSource,
  type ClipProfile,
  type ClipOutcome,
  type ProfiledClip,
  type ProfilerOptions,
  type ProfileAllOptions,
} from './profiler.js';
export { explain, spearman, aucOf, ranks, type Explanation, type DescriptorSeparation, type ScoredProfile } from './explain.js';
export {
  encodeStripAndAnim,
  flowHeatMap,
  heatColour,
  encodePng,
  PREVIEW_KINDS,
  PREVIEW_TYPES,
  PREVIEW_DEFAULTS,
  MAX_PREVIEW_BYTES,
  HEAT_STOPS,
  type PreviewKind,
  type PreviewOptions,
  type ClipPreviews,
} from './previews.js';
