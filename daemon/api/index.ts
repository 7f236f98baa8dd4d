export { buildApi, type ApiDeps, type ApiOptions } from './server.js';
export { LiveFeed, LIVE_EVENT_TYPES, topSamples, type LiveEventType, type LiveFeedOptions, type LiveSampleRow } from './live.js';
