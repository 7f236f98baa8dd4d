export { Store, type StoreOptions } from './store.js';
export type { FlushStats } from './flusher.js';
export type { BatchEffect } from './apply-batch.js';
export type { ClipProfileRecord } from './tables.js';
export type { StoreTx, LoggedBatch, RunUpdate } from './commit-log.js';
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
