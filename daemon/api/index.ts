export { buildApi, type ApiDeps, type ApiOptions, type RouteAccess } from './server.js';
export {
  LiveFeed,
  LIVE_EVENT_TYPES,
  topSamples,
  type LiveEventType,
  type LiveFeedOptions,
  type LiveSampleRow,
  type RecentDownweight,
} from './live.js';
