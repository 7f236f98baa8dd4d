export { MotiveMetrics, LATENCY_BUCKETS_SECONDS, type MetricsDeps } from './metrics.js';
export { registerMetricsRoute } from './route.js';
