/**
 * The one error type of the daemon. Every failure that crosses a module boundary is a
 * `MotiveError` with a stable `code`; the edges (gRPC, REST, CLI) map codes to statuses.
 */

/**
 * Every error code, never reused. `status` is the HTTP status the REST edge answers with; `retry`
 * marks the errors after which a trainer client reconnects and resends (the daemon is going away,
 * could not commit, or reset a stalled stream); after any other fatal error a client stops and
 * reports it. The clients' copies of this table are generated from it (`npm run gen:errors`).
 */
export const ErrorCodes = {
  MOTIVE_CONFIG_INVALID: { status: 500, message: 'invalid configuration' },
  MOTIVE_CONFIG_FILE: { status: 500, message: 'cannot read configuration file' },
  MOTIVE_CONFIG_TLS: { status: 500, message: 'cannot read TLS files' },
  MOTIVE_STORE_OPEN: { status: 500, message: 'cannot open the store' },
  MOTIVE_STORE_FORMAT: { status: 500, message: 'store format version mismatch' },
  MOTIVE_STORE_COMMIT: { status: 503, message: 'store commit failed', retry: true },
  MOTIVE_STORE_FULL: { status: 507, message: 'store is full', retry: true },
  MOTIVE_STORE_CORRUPT: { status: 500, message: 'the store is damaged' },
  MOTIVE_STORE_READONLY: { status: 500, message: 'the data directory is not writable' },
  MOTIVE_INGEST_HELLO_REQUIRED: { status: 400, message: 'first message must be Hello' },
  MOTIVE_INGEST_HELLO_INVALID: { status: 400, message: 'invalid Hello' },
  MOTIVE_INGEST_DUPLICATE_HELLO: { status: 400, message: 'Hello sent twice on one stream' },
  MOTIVE_INGEST_BAD_DTYPE: { status: 400, message: 'unknown sketch dtype' },
  MOTIVE_INGEST_BAD_DIM: { status: 400, message: 'sketch dimension out of range' },
  MOTIVE_INGEST_PROJECTION_MISMATCH: { status: 409, message: 'projection differs from the run' },
  MOTIVE_INGEST_FEATURES_MISMATCH: { status: 409, message: 'feature names differ from the run' },
  MOTIVE_INGEST_UNAUTHENTICATED: { status: 401, message: 'missing or wrong token' },
  MOTIVE_INGEST_BATCH_SHAPE: { status: 400, message: 'sketch bytes do not match ids x dim' },
  MOTIVE_INGEST_BATCH_NONFINITE: { status: 400, message: 'sketch holds NaN or Inf' },
  MOTIVE_INGEST_BAD_LR: { status: 400, message: 'lr is not a finite number in [0, 1000]' },
  MOTIVE_INGEST_BATCH_OVERFLOW: { status: 400, message: 'the batch would make an accumulated value overflow' },
  MOTIVE_INGEST_BATCH_INVALID: { status: 400, message: 'invalid batch' },
  MOTIVE_INGEST_BATCH_EMPTY: { status: 400, message: 'batch holds no samples' },
  MOTIVE_INGEST_SAMPLE_ID: { status: 400, message: 'invalid sample id' },
  MOTIVE_INGEST_QUERIES_INVALID: { status: 400, message: 'invalid query set' },
  MOTIVE_INGEST_UNKNOWN_MESSAGE: { status: 400, message: 'message has no body' },
  MOTIVE_INGEST_SHUTTING_DOWN: { status: 503, message: 'daemon is shutting down', retry: true },
  MOTIVE_INGEST_INTERNAL: { status: 500, message: 'internal error', retry: true },
  MOTIVE_INGEST_FORBIDDEN: { status: 403, message: 'token may not attach to this run' },
  MOTIVE_INGEST_SEQ_ORDER: { status: 400, message: 'seq lower than an earlier seq on this stream' },
  MOTIVE_INGEST_STEP_BACKWARDS: { status: 400, message: 'step lower than an earlier step on this stream' },
  MOTIVE_INGEST_WORLD_SIZE: { status: 409, message: "world_size differs from the run's" },
  MOTIVE_INGEST_JOB_MISMATCH: { status: 409, message: 'a worker batch row does not match the side-car job it names' },
  MOTIVE_INGEST_LEASE_INVALID: { status: 400, message: 'invalid side-car lease request' },
  MOTIVE_INGEST_LIMIT_RUNS: { status: 429, message: 'the daemon holds its maximum number of runs' },
  MOTIVE_INGEST_LIMIT_SAMPLES: { status: 429, message: 'the run holds its maximum number of samples' },
  MOTIVE_INGEST_STALLED: { status: 429, message: 'the trainer stopped reading its stream', retry: true },
  MOTIVE_INGEST_RUN_DELETED: { status: 410, message: 'the run was deleted' },
  MOTIVE_API_RUN_NOT_FOUND: { status: 404, message: 'run not found' },
  MOTIVE_API_SAMPLE_NOT_FOUND: { status: 404, message: 'sample not found' },
  MOTIVE_API_BAD_REQUEST: { status: 400, message: 'bad request' },
  MOTIVE_API_BAD_SKETCH: { status: 400, message: 'query sketch has the wrong shape' },
  MOTIVE_API_UNAUTHENTICATED: { status: 401, message: 'missing or wrong token' },
  MOTIVE_API_FORBIDDEN: { status: 403, message: 'token lacks the role for this request' },
  MOTIVE_API_BACKUP: { status: 500, message: 'backup failed' },
  MOTIVE_API_BACKUP_TARGET: { status: 400, message: 'backup directory refused' },
  MOTIVE_API_NOT_FOUND: { status: 404, message: 'no such route' },
  MOTIVE_API_INTERNAL: { status: 500, message: 'internal error' },
  MOTIVE_API_TOO_MANY_CLIENTS: { status: 503, message: 'too many live clients' },
  MOTIVE_INFLUENCE_KERNEL: { status: 500, message: 'compute kernel failed' },
  MOTIVE_MOTION_FFMPEG_MISSING: { status: 500, message: 'ffmpeg is not installed' },
  MOTIVE_MOTION_DECODE: { status: 422, message: 'cannot decode the clip' },
  MOTIVE_MOTION_FLOW_MODEL: { status: 500, message: 'flow model failed' },
  MOTIVE_MOTION_SOURCE: { status: 400, message: 'cannot read the clip list' },
  MOTIVE_API_PROFILE_NOT_FOUND: { status: 404, message: 'no motion profile for this clip' },
  MOTIVE_MOTION_PREVIEW: { status: 422, message: 'cannot make the clip preview' },
  MOTIVE_API_PREVIEW_NOT_FOUND: { status: 404, message: 'no preview of this kind for this clip' },
  MOTIVE_REPORT_WRITE: { status: 500, message: 'cannot write the report' },
  MOTIVE_REPLAY_FILE: { status: 400, message: 'cannot read the recorded run' },
  MOTIVE_EXPORT_FORMAT: { status: 400, message: 'unknown export format' },
  MOTIVE_EVAL_LABELS: { status: 400, message: 'invalid labels file' },
  MOTIVE_EVAL_UNKNOWN_IDS: { status: 400, message: 'labelled clips not in the run' },
  MOTIVE_EVAL_SIGNAL: { status: 400, message: 'signal not in the run data' },
  MOTIVE_EVAL_UNSCORED: { status: 400, message: 'too few scored clips' },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class MotiveError extends Error {
  override readonly name = 'MotiveError';
  readonly code: ErrorCode;
  /** HTTP status for the REST edge. */
  readonly status: number;

  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown }) {
    const base = ErrorCodes[code].message;
    super(detail === undefined ? base : `${base}: ${detail}`, options);
    this.code = code;
    this.status = ErrorCodes[code].status;
  }
}

export function isMotiveError(err: unknown): err is MotiveError {
  return err instanceof MotiveError;
}

/** A readable message for any thrown value. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
