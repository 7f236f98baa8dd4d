export { ErrorCodes, MotiveError, isMotiveError, describeError, type ErrorCode } from './errors.js';
export { decodeFloat16, decodeSketches, decodeSketchesInto } from './float16.js';
export { normalizeRows } from './vectors.js';
export { trace } from './trace.js';
export {
  MotiveChannel,
  ingestBatchAccepted,
  ingestBatchAcked,
  type IngestBatchAccepted,
  type IngestBatchAcked,
  type SourcedMessage,
} from './channels.js';
export { createLogger, type Logger } from './logger.js';
export { percentile, percentileVotes, median } from './stats.js';
export { Authorizer, httpToken, type Action, type AuthResult, type Grant, type Role, type TokenSpec } from './auth.js';
