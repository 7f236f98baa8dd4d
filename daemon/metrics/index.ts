export { MotiveMetrics, LATENCY_BUCKETS_SECONDS, INGEST_REJECT_CODES, type MetricsDeps } from './metrics.js';
export { registerMetricsRoute } from './route.js';
