export { buildApi, type ApiDeps, type ApiOptions } from './app.js';
export type { RouteAccess } from './edge.js';
export {
  LiveFeed,
  LIVE_EVENT_TYPES,
  topSamples,
  type LiveEvent,
  type LiveEventType,
  type LiveFeedOptions,
  type LiveSampleRow,
  type RecentDownweight,
} from './live.js';
