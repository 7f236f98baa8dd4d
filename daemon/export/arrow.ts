/**
 * A run's samples as an Arrow IPC stream (schemas/samples.arrow.md): one row per sample with its
 * evidence, vote count, weight, fused signal, per-query sums, per-clip features and motion descriptors. Rows are produced in record
 * batches on demand, so a consumer that reads slowly holds the producer back instead of growing
 * the daemon's memory.
 */
import {
  Bool,
  Field,
  FixedSizeList,
  Float64,
  Int32,
  Int64,
  RecordBatch,
  RecordBatchStreamWriter,
  Schema,
  Struct,
  Utf8,
  makeData,
  vectorFromArray,
  type Data,
  type DataType,
} from 'apache-arrow';
import type { RunViews } from '../influence/index.js';
import type { ClipProfileRecord, RunState, Store } from '../store/index.js';

/** Version of the exported table's layout, in the schema metadata as `motive.schema`. */
export const EXPORT_SCHEMA_VERSION = 'motive-samples/2';

export interface ArrowExportOptions {
  /** Rows per record batch (default 4096). */
  readonly batchRows?: number;
  /** The daemon's `score.votePercentile`, written to the metadata. */
  readonly votePercentile: number;
}

/** Motion columns: Arrow name, profile field, type. */
const MOTION_COLUMNS = [
  ['dynamic', 'dynamic', 'bool'],
  ['dynamic_degree', 'dynamicDegree', 'f64'],
  ['flow_mean', 'flowMean', 'f64'],
  ['flow_top5', 'flowTop5', 'f64'],
  ['jitter', 'jitter', 'f64'],
  ['reversals', 'reversals', 'f64'],
  ['static_fraction', 'staticFraction', 'f64'],
  ['scene_cuts', 'sceneCuts', 'i32'],
  ['frames', 'frames', 'i32'],
  ['clip_path', 'path', 'utf8'],
] as const;

function motionType(kind: 'bool' | 'f64' | 'i32' | 'utf8'): DataType {
  switch (kind) {
    case 'bool':
      return new Bool();
    case 'f64':
      return new Float64();
    case 'i32':
      return new Int32();
    case 'utf8':
      return new Utf8();
  }
}

/** The table's schema for a run with `queries` query ids. */
export function exportSchema(run: RunState, thresholds: Float64Array, votePercentile: number): Schema {
  const m = run.queryIds.length;
  const fields = [
    new Field('id', new Utf8(), false),
    new Field('seen', new Int64(), false),
    new Field('last_step', new Int64(), false),
    new Field('score', new Float64(), false),
    new Field('votes', new Int32(), false),
    new Field('weight', new Float64(), false),
    new Field('query_sums', new FixedSizeList(m, new Field('item', new Float64(), false)), false),
    new Field('fused', new Float64(), true),
    new Field('check', new Float64(), true),
    ...run.features.names.map((name) => new Field(`feature:${name}`, new Float64(), true)),
    ...MOTION_COLUMNS.map(([name, , kind]) => new Field(name, motionType(kind), true)),
    new Field('clip_hash', new Utf8(), true),
  ];
  const metadata = new Map<string, string>([
    ['motive.schema', EXPORT_SCHEMA_VERSION],
    ['motive.run', run.info.id],
    ['motive.query_ids', JSON.stringify(run.queryIds)],
    ['motive.vote_percentile', String(votePercentile)],
    ['motive.vote_thresholds', JSON.stringify([...thresholds].map((t) => (Number.isFinite(t) ? t : null)))],
    ['motive.feature_names', JSON.stringify(run.features.names)],
  ]);
  return new Schema(fields, metadata);
}

/** One record batch of `ids`, read from the run's current state. */
function buildBatch(
  schema: Schema,
  run: RunState,
  store: Store,
  views: RunViews,
  ids: readonly string[],
  thresholds: Float64Array,
  featureNames: readonly string[],
): RecordBatch {
  const n = ids.length;
  const nf = featureNames.length;
  const fused: Array<number | null> = new Array<number | null>(n).fill(null);
  const check: Array<number | null> = new Array<number | null>(n).fill(null);
  const features: Array<Array<number | null>> = featureNames.map(() => new Array<number | null>(n).fill(null));
  const m = run.queryIds.length;
  const seen = new BigInt64Array(n);
  const lastStep = new BigInt64Array(n);
  const score = new Float64Array(n);
  const votes = new Int32Array(n);
  const weight = new Float64Array(n);
  const sums = new Float64Array(n * m);
  const profiles: Array<ClipProfileRecord | undefined> = [];
  ids.forEach((id, i) => {
    const s = run.samples.get(id);
    profiles.push(store.profile(id));
    if (s === undefined) return;
    seen[i] = BigInt(Math.round(s.seen));
    lastStep[i] = BigInt(Math.round(s.lastStep));
    score[i] = run.score(s);
    weight[i] = s.weight;
    const view = views.sample(run, s);
    fused[i] = view.fused;
    check[i] = view.check;
    const row = nf === 0 ? undefined : run.features.get(id);
    if (row !== undefined && row.length === nf) for (let f = 0; f < nf; f++) (features[f] as Array<number | null>)[i] = row[f] as number;
    let v = 0;
    for (let j = 0; j < m; j++) {
      const x = run.sumAt(s, j);
      sums[i * m + j] = x;
      if (x > (thresholds[j] as number)) v++;
    }
    votes[i] = v;
  });
  const children: Data[] = [
    vectorFromArray([...ids], new Utf8()).data[0] as Data,
    makeData({ type: new Int64(), length: n, data: seen }),
    makeData({ type: new Int64(), length: n, data: lastStep }),
    makeData({ type: new Float64(), length: n, data: score }),
    makeData({ type: new Int32(), length: n, data: votes }),
    makeData({ type: new Float64(), length: n, data: weight }),
    makeData({
      type: schema.fields[6]!.type as FixedSizeList<Float64>,
      length: n,
      nullCount: 0,
      child: makeData({ type: new Float64(), length: n * m, data: sums }),
    }),
    vectorFromArray(fused, new Float64()).data[0] as Data,
    vectorFromArray(check, new Float64()).data[0] as Data,
    ...features.map((values) => vectorFromArray(values, new Float64()).data[0] as Data),
    ...MOTION_COLUMNS.map(([, key, kind]) => {
      const values = profiles.map((p) => (p === undefined ? null : (p.fields[key] ?? null)));
      return vectorFromArray(values, motionType(kind)).data[0] as Data;
    }),
    vectorFromArray(
      profiles.map((p) => p?.hash ?? null),
      new Utf8(),
    ).data[0] as Data,
  ];
  return new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: n, nullCount: 0, children }));
}

/** IPC stream bytes of a stream holding `batches` (schema message first, end-of-stream marker last). */
function ipcBytes(schema: Schema, batches: readonly RecordBatch[]): Uint8Array {
  const writer = new RecordBatchStreamWriter();
  writer.reset(undefined, schema);
  for (const b of batches) writer.write(b);
  writer.finish();
  return writer.toUint8Array(true);
}

/** The 8-byte end-of-stream marker: continuation 0xFFFFFFFF, then a zero length. */
const EOS_BYTES = 8;

/**
 * The run's samples as Arrow IPC stream chunks: the schema message, one message per record batch
 * (`batchRows` rows, sample ids in sorted order), then the end-of-stream marker. Each batch is
 * built only when the consumer asks for the next chunk. The sample ids and the vote thresholds are
 * taken when the export starts; each row holds the sample's values when its batch is built.
 */
export async function* arrowExport(run: RunState, store: Store, views: RunViews, options: ArrowExportOptions): AsyncGenerator<Uint8Array> {
  const batchRows = options.batchRows ?? 4096;
  const thresholds = Float64Array.from(views.thresholds(run));
  const schema = exportSchema(run, thresholds, options.votePercentile);
  const featureNames = [...run.features.names];
  const ids = [...run.samples.keys()].sort();
  const header = ipcBytes(schema, []);
  // The schema message is the stream minus its end marker; each batch message is re-framed the same way.
  const schemaBytes = header.byteLength - EOS_BYTES;
  yield header.subarray(0, schemaBytes);
  for (let start = 0; start < ids.length; start += batchRows) {
    const batch = buildBatch(schema, run, store, views, ids.slice(start, start + batchRows), thresholds, featureNames);
    const bytes = ipcBytes(schema, [batch]);
    yield bytes.subarray(schemaBytes, bytes.byteLength - EOS_BYTES);
  }
  yield header.subarray(schemaBytes);
}
