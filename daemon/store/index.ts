export { Store, type StoreOptions, type StoreTx, type BatchEffect, type FlushStats, type LoggedBatch, type RunUpdate } from './store.js';
export type { ClipProfileRecord } from './tables.js';
export { STORE_FORMAT_VERSION } from './migration.js';
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
export { type PreviewEntry, type PreviewRecord } from './previews.js';
export type { PendingScores } from './pending-scores.js';
export { HISTORY_POINTS, type HistoryPoint } from './history.js';
export { SidecarJobs, type Job, type JobStats, type ReportPlan, type AnswerPlan } from './jobs.js';
