export {
  Store,
  STORE_FORMAT_VERSION,
  type StoreOptions,
  type StoreTx,
  type ClipProfileRecord,
  type BatchEffect,
  type FlushStats,
  type LoggedBatch,
  type RunUpdate,
} from './store.js';
export {
  RunState,
  type RunInfo,
  type ProjectionInfo,
  type QuerySetRecord,
  type SampleState,
  type SketchDType,
  type ScoreMode,
} from './run-state.js';
export { SampleFeatures, sameNames } from './features.js';
export { SidecarJobs, type Job, type JobStats, type ReportPlan, type AnswerPlan } from './jobs.js';
