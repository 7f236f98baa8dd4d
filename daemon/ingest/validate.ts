/** Validation and decoding of trainer messages. Each failure is a MotiveError with a stable code. */
import { MotiveError, type Authorizer } from '../shared/index.js';
import { decodeFiniteSketches, dtypeBytes, type SketchBuffers } from '../influence/index.js';
import type { SketchDType } from '../store/index.js';
import type { HelloMsg, QuerySetMsg, SketchBatchMsg } from './proto.js';

export interface IngestLimits {
  readonly maxDim: number;
  readonly maxSampleIdBytes: number;
  readonly maxQueries: number;
}

/**
 * Largest learning rate a batch may carry. Far above any optimiser's (learning rates are at most
 * ~10), and low enough that lr·x stays within float32 range for the sketch values trainers send.
 * 0 is accepted: warm-up schedules start there, and such a batch only counts its samples seen.
 */
export const MAX_LR = 1000;

const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** Most per-clip features a run may carry, and the longest feature name (characters). */
export const MAX_FEATURES = 32;
export const MAX_FEATURE_NAME = 64;

export interface ValidHello {
  readonly runId: string;
  readonly rank: number;
  readonly worldSize: number;
  readonly dim: number;
  readonly dtype: SketchDType;
  readonly projection: { kind: string; seed: string; dim: number; fingerprint: string };
  readonly client: string;
  readonly applyWeights: boolean;
  /** Names of the per-clip features this stream's batches carry (empty: none). */
  readonly featureNames: readonly string[];
  /** A side-car worker's stream: its batches answer jobs (docs/wire.md). */
  readonly worker: boolean;
}

/** Checks Hello.feature_names: at most MAX_FEATURES, each non-empty, unique, at most MAX_FEATURE_NAME characters. */
export function validateFeatureNames(names: readonly string[]): string[] {
  if (names.length > MAX_FEATURES) {
    throw new MotiveError('MOTIVE_INGEST_HELLO_INVALID', `${names.length} feature names, at most ${MAX_FEATURES}`);
  }
  const seen = new Set<string>();
  for (const name of names) {
    if (name.length === 0 || name.length > MAX_FEATURE_NAME) {
      throw new MotiveError('MOTIVE_INGEST_HELLO_INVALID', `feature names must be 1-${MAX_FEATURE_NAME} characters`);
    }
    if (name.includes('\u0000') || name.includes('\uFFFD')) {
      throw new MotiveError('MOTIVE_INGEST_HELLO_INVALID', 'a feature name holds NUL or invalid UTF-8');
    }
    if (seen.has(name)) throw new MotiveError('MOTIVE_INGEST_HELLO_INVALID', `feature name ${JSON.stringify(name)} repeats`);
    seen.add(name);
  }
  return [...names];
}

/**
 * Checks a Hello: the token first (so strangers learn nothing about runs), then the fields, then
 * whether the token's role and run list allow attaching to this run.
 */
export function validateHello(h: HelloMsg, limits: IngestLimits, auth: Authorizer): ValidHello {
  if (auth.enabled && auth.identify(h.token) === undefined) throw new MotiveError('MOTIVE_INGEST_UNAUTHENTICATED');
  if (!RUN_ID.test(h.runId)) {
    throw new MotiveError('MOTIVE_INGEST_HELLO_INVALID', 'run_id must be 1-128 characters of [A-Za-z0-9._:-], starting alphanumeric');
  }
  const worldSize = h.worldSize === 0 ? 1 : h.worldSize;
  if (h.rank >= worldSize) throw new MotiveError('MOTIVE_INGEST_HELLO_INVALID', `rank ${h.rank} >= world_size ${worldSize}`);
  const p = h.projection;
  if (p === null) throw new MotiveError('MOTIVE_INGEST_HELLO_INVALID', 'projection is required');
  if (!Number.isInteger(p.dim) || p.dim < 1 || p.dim > limits.maxDim) {
    throw new MotiveError('MOTIVE_INGEST_BAD_DIM', `projection.dim ${p.dim} not in [1, ${limits.maxDim}]`);
  }
  let dtype: SketchDType;
  if (h.dtype === 'FLOAT32') dtype = 'float32';
  else if (h.dtype === 'FLOAT16') dtype = 'float16';
  else throw new MotiveError('MOTIVE_INGEST_BAD_DTYPE', `dtype ${String(h.dtype)} (expected FLOAT32 or FLOAT16)`);
  const featureNames = validateFeatureNames(h.featureNames);
  if (!auth.check(h.token, 'attach', h.runId).ok) throw new MotiveError('MOTIVE_INGEST_FORBIDDEN', `run ${h.runId}`);
  return {
    runId: h.runId,
    rank: h.rank,
    worldSize,
    dim: p.dim,
    dtype,
    projection: { kind: p.kind, seed: String(p.seed), dim: p.dim, fingerprint: p.fingerprint },
    client: h.client.slice(0, 200),
    applyWeights: h.applyWeights,
    featureNames,
    worker: h.worker,
  };
}

function checkIds(ids: readonly string[], limits: IngestLimits, what: string): void {
  for (const id of ids) {
    if (id.length === 0) throw new MotiveError('MOTIVE_INGEST_SAMPLE_ID', `${what} id is empty`);
    if (Buffer.byteLength(id, 'utf8') > limits.maxSampleIdBytes) {
      throw new MotiveError('MOTIVE_INGEST_SAMPLE_ID', `${what} id longer than ${limits.maxSampleIdBytes} bytes`);
    }
    if (id.includes('\u0000') || id.includes('\uFFFD')) {
      throw new MotiveError('MOTIVE_INGEST_SAMPLE_ID', `${what} id holds NUL or invalid UTF-8`);
    }
  }
}

export interface DecodedBatch {
  readonly seq: number;
  readonly step: number;
  readonly lr: number;
  readonly sampleIds: string[];
  readonly sketches: Float32Array;
  /** Per-clip features, row-major [n × nf] (nf: the Hello's feature names), or undefined when the batch carries none. */
  readonly features: Float32Array | undefined;
  /** Whether `sketches` are already L2-normalised row by row (decoded for a cosine run). */
  readonly normalized: boolean;
  /**
   * The sketch bytes as received, for the store's log: a copy in a reused buffer when decoded
   * with `buffers` (see {@link SketchBuffers.copyBytes}), else a view into the message.
   */
  readonly wire: Uint8Array;
  /** The dtype of `wire`: the stream's, which may differ from its run's (mixed-precision ranks). */
  readonly wireDtype: SketchDType;
  /** A side-car report (no sketches). */
  readonly deferred?: boolean;
  /** A worker batch: the job each row answers, and the snapshot step it was sketched at. */
  readonly jobIds?: readonly number[];
  readonly snapshotStep?: number;
}

/**
 * Decodes a batch; its sketches, and a copy of their bytes as received, go into buffers from
 * `buffers` when given (see SketchBuffers), the sketches L2-normalised row by row in the same
 * pass when `normalize` (a cosine run).
 */
export function decodeBatch(
  b: SketchBatchMsg,
  dim: number,
  dtype: SketchDType,
  limits: IngestLimits,
  buffers?: SketchBuffers,
  normalize = false,
  featureCount = 0,
  worker = false,
): DecodedBatch {
  if (!Number.isSafeInteger(b.seq) || b.seq < 1) throw new MotiveError('MOTIVE_INGEST_BATCH_INVALID', 'seq must be >= 1');
  if (!Number.isSafeInteger(b.step) || b.step < 0) throw new MotiveError('MOTIVE_INGEST_BATCH_INVALID', 'step out of range');
  if (!(b.lr >= 0 && b.lr <= MAX_LR)) throw new MotiveError('MOTIVE_INGEST_BAD_LR', `lr ${b.lr}`);
  const n = b.sampleIds.length;
  if (n === 0) throw new MotiveError('MOTIVE_INGEST_BATCH_EMPTY');
  checkIds(b.sampleIds, limits, 'sample');
  const sidecar = decodeSidecar(b, n, worker);
  if (b.deferred) {
    return {
      seq: b.seq,
      step: b.step,
      lr: b.lr,
      sampleIds: b.sampleIds,
      sketches: new Float32Array(0),
      features: undefined,
      normalized: normalize,
      wire: new Uint8Array(0),
      wireDtype: dtype,
      deferred: true,
    };
  }
  const expected = n * dim * dtypeBytes(dtype);
  if (b.sketches.length !== expected) {
    throw new MotiveError(
      'MOTIVE_INGEST_BATCH_SHAPE',
      `${b.sketches.length} bytes, expected ${n} x ${dim} x ${dtypeBytes(dtype)} = ${expected}`,
    );
  }
  if (b.losses.length !== 0 && b.losses.length !== n) {
    throw new MotiveError('MOTIVE_INGEST_BATCH_INVALID', `${b.losses.length} losses for ${n} samples`);
  }
  const features = decodeFeatures(b.features, n, featureCount);
  const sketches = decodeFiniteSketches(b.sketches, dtype, n * dim, buffers, normalize ? dim : undefined);
  if (sketches === undefined) throw new MotiveError('MOTIVE_INGEST_BATCH_NONFINITE');
  return {
    seq: b.seq,
    step: b.step,
    lr: b.lr,
    sampleIds: b.sampleIds,
    sketches,
    features,
    normalized: normalize,
    wire: buffers === undefined ? b.sketches : buffers.copyBytes(b.sketches),
    wireDtype: dtype,
    ...sidecar,
  };
}

/**
 * The side-car fields (docs/wire.md): a report (`deferred`) carries ids alone and comes from a
 * trainer's stream; a worker's batch names one job per row and its snapshot step; other batches
 * carry neither.
 */
function decodeSidecar(b: SketchBatchMsg, n: number, worker: boolean): { jobIds?: number[]; snapshotStep?: number } {
  const jobIds = b.jobIds;
  if (b.deferred) {
    if (worker) throw new MotiveError('MOTIVE_INGEST_BATCH_INVALID', 'a worker sends no deferred batches');
    if (b.sketches.length !== 0 || b.losses.length !== 0 || b.features.length !== 0 || jobIds.length !== 0) {
      throw new MotiveError('MOTIVE_INGEST_BATCH_INVALID', 'a deferred batch carries sample ids alone');
    }
    return {};
  }
  if (!worker) {
    if (jobIds.length !== 0) throw new MotiveError('MOTIVE_INGEST_BATCH_INVALID', 'job_ids on a trainer stream (Hello.worker unset)');
    return {};
  }
  if (jobIds.length !== n) throw new MotiveError('MOTIVE_INGEST_BATCH_INVALID', `${jobIds.length} job ids for ${n} samples`);
  for (const id of jobIds) {
    if (!Number.isSafeInteger(id) || id < 1) throw new MotiveError('MOTIVE_INGEST_BATCH_INVALID', `job id ${id} out of range`);
  }
  const snapshotStep = b.snapshotStep;
  if (!Number.isSafeInteger(snapshotStep)) throw new MotiveError('MOTIVE_INGEST_BATCH_INVALID', 'snapshot_step out of range');
  return { jobIds, snapshotStep };
}

/** A batch's features: none, or exactly n × nf finite values (float32 as sent). */
function decodeFeatures(values: readonly number[], n: number, nf: number): Float32Array | undefined {
  if (values.length === 0) return undefined;
  if (values.length !== n * nf) {
    throw new MotiveError(
      'MOTIVE_INGEST_BATCH_INVALID',
      nf === 0
        ? `${values.length} features, but the Hello named no features`
        : `${values.length} features for ${n} samples x ${nf} feature names`,
    );
  }
  const out = Float32Array.from(values);
  for (let i = 0; i < out.length; i++) {
    if (!Number.isFinite(out[i])) throw new MotiveError('MOTIVE_INGEST_BATCH_INVALID', 'features hold NaN or Inf');
  }
  return out;
}

export interface DecodedQueries {
  readonly version: number;
  readonly step: number;
  readonly ids: string[];
  readonly groups: string[];
  readonly sketches: Float32Array;
}

export function decodeQueries(q: QuerySetMsg, dim: number, dtype: SketchDType, limits: IngestLimits): DecodedQueries {
  if (!Number.isSafeInteger(q.version) || q.version < 1) throw new MotiveError('MOTIVE_INGEST_QUERIES_INVALID', 'version must be >= 1');
  if (!Number.isSafeInteger(q.step) || q.step < 0) throw new MotiveError('MOTIVE_INGEST_QUERIES_INVALID', 'step out of range');
  const m = q.queryIds.length;
  if (m === 0) throw new MotiveError('MOTIVE_INGEST_QUERIES_INVALID', 'no query ids');
  if (m > limits.maxQueries) throw new MotiveError('MOTIVE_INGEST_QUERIES_INVALID', `more than ${limits.maxQueries} queries`);
  checkIds(q.queryIds, limits, 'query');
  if (new Set(q.queryIds).size !== m) throw new MotiveError('MOTIVE_INGEST_QUERIES_INVALID', 'query ids repeat');
  if (q.groups.length !== 0 && q.groups.length !== m) {
    throw new MotiveError('MOTIVE_INGEST_QUERIES_INVALID', `${q.groups.length} groups for ${m} queries`);
  }
  const expected = m * dim * dtypeBytes(dtype);
  if (q.sketches.length !== expected) {
    throw new MotiveError('MOTIVE_INGEST_QUERIES_INVALID', `${q.sketches.length} sketch bytes, expected ${expected}`);
  }
  const sketches = decodeFiniteSketches(q.sketches, dtype, m * dim);
  if (sketches === undefined) throw new MotiveError('MOTIVE_INGEST_QUERIES_INVALID', 'query sketch holds NaN or Inf');
  return { version: q.version, step: q.step, ids: q.queryIds, groups: q.groups, sketches };
}
