/**
 * Replays a recorded training run (an Arrow IPC file of the trainer's messages) into a daemon
 * through the TypeScript client, in the recorded order, so the demo shows what a real run did.
 *
 * Accepted layouts, one row per trainer message, in order:
 * - a binary column `message` (or `payload`) holding the serialized `motive.v1.TrainerMessage`;
 * - or exploded columns: `kind` ('hello' | 'batch' | 'queries', or 1 | 2 | 3), `step`, `lr`,
 *   `sample_ids`, `sketches` (little-endian float32 bytes or a float list), and for query sets
 *   `version`, `query_ids`, `groups`; `dim` (or a Hello) gives the sketch length.
 * An optional `t_ms` column (ms since the run started) paces the replay.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tableFromIPC, type Table } from 'apache-arrow';
import protobuf from 'protobufjs';
import { MotiveClient } from '../../trainer-hooks/ts/index.js';
import { MotiveError, describeError } from '../shared/index.js';
import { WIRE_DECODE_OPTIONS, type TrainerMessageMsg } from '../shared/wire.js';

const PROTO_PATH = fileURLToPath(new URL('../../schemas/motive.proto', import.meta.url));

/** One decoded message of a recorded run. */
export type RecordedMessage =
  | { kind: 'hello'; tMs: number; dim: number; projection?: { kind: string; seed: string; fingerprint: string } }
  | { kind: 'batch'; tMs: number; step: number; lr: number; ids: string[]; sketches: Float32Array }
  | { kind: 'queries'; tMs: number; version: number; step: number; ids: string[]; groups: string[]; sketches: Float32Array };

export interface RecordedRunProgress {
  readonly batches: number;
  readonly sketches: number;
  readonly querySets: number;
  readonly step: number;
}

function f32(value: unknown): Float32Array {
  if (value instanceof Uint8Array) {
    const copy = new Uint8Array(value);
    return new Float32Array(copy.buffer, copy.byteOffset, copy.byteLength / 4);
  }
  if (value instanceof Float32Array) return value;
  if (value !== null && typeof value === 'object' && Symbol.iterator in value) return Float32Array.from(value as Iterable<number>);
  throw new Error('sketches: expected float32 bytes or a list of floats');
}

function strings(value: unknown): string[] {
  if (value === null || value === undefined) return [];
  if (typeof value === 'object' && Symbol.iterator in value) return [...(value as Iterable<unknown>)].map(String);
  throw new Error('expected a list of strings');
}

const KIND_NAMES: Record<string, 'hello' | 'batch' | 'queries'> = {
  '1': 'hello',
  '2': 'batch',
  '3': 'queries',
  hello: 'hello',
  batch: 'batch',
  queries: 'queries',
};

const ARROW_MAGIC = Buffer.from('ARROW1');

/**
 * The table of an Arrow IPC file, or `MOTIVE_REPLAY_FILE` naming what is wrong: a file whose
 * `ARROW1` footer is missing (cut short), or bytes the Arrow reader cannot parse.
 */
function readIpc(path: string): Table {
  const bytes = readFileSync(path);
  if (bytes.subarray(0, 6).equals(ARROW_MAGIC) && (bytes.length < 12 || !bytes.subarray(bytes.length - 6).equals(ARROW_MAGIC))) {
    throw new MotiveError(
      'MOTIVE_REPLAY_FILE',
      `${path} is truncated: an Arrow IPC file ends with the ARROW1 footer, these ${bytes.length} bytes do not`,
    );
  }
  let table: Table;
  try {
    table = tableFromIPC(bytes);
  } catch (err) {
    throw new MotiveError('MOTIVE_REPLAY_FILE', `${path} is not a readable Arrow IPC file (${describeError(err)})`, { cause: err });
  }
  if (table.schema.fields.length === 0)
    throw new MotiveError('MOTIVE_REPLAY_FILE', `${path} holds no Arrow schema (empty, or not Arrow IPC)`);
  return table;
}

/** Reads a recorded run; throws with the reason when the file is damaged or has neither layout. */
export function readRecordedRun(path: string): RecordedMessage[] {
  const table = readIpc(path);
  const names = table.schema.fields.map((f) => f.name);
  const col = (name: string): ((i: number) => unknown) | undefined => {
    const v = table.getChild(name);
    return v === null ? undefined : (i) => v.get(i) as unknown;
  };
  const tMs = col('t_ms');
  const out: RecordedMessage[] = [];
  const messageCol = col('message') ?? col('payload');
  if (messageCol !== undefined) {
    const Trainer = protobuf.loadSync(PROTO_PATH).lookupType('motive.v1.TrainerMessage');
    for (let i = 0; i < table.numRows; i++) {
      const raw = messageCol(i);
      if (!(raw instanceof Uint8Array)) throw new Error(`row ${i}: message is not binary`);
      // Decoded as grpc-js decodes a stream's messages, so the generated wire types describe it.
      const m = Trainer.toObject(Trainer.decode(raw), WIRE_DECODE_OPTIONS) as TrainerMessageMsg;
      const t = Number(tMs?.(i) ?? 0);
      if (m.body === 'hello') {
        const p = m.hello.projection;
        out.push({
          kind: 'hello',
          tMs: t,
          dim: p?.dim ?? 0,
          ...(p === null ? {} : { projection: { kind: p.kind, seed: String(p.seed), fingerprint: p.fingerprint } }),
        });
      } else if (m.body === 'batch') {
        const b = m.batch;
        out.push({ kind: 'batch', tMs: t, step: b.step, lr: b.lr, ids: b.sampleIds, sketches: f32(b.sketches) });
      } else if (m.body === 'queries') {
        const q = m.queries;
        out.push({
          kind: 'queries',
          tMs: t,
          version: q.version,
          step: q.step,
          ids: q.queryIds,
          groups: q.groups,
          sketches: f32(q.sketches),
        });
      }
    }
    return out;
  }
  const kind = col('kind');
  const need = ['kind', 'sketches'];
  if (kind === undefined || col('sketches') === undefined) {
    throw new Error(`${path}: no "message" column and no exploded layout (needs ${need.join(', ')}); columns: ${names.join(', ')}`);
  }
  const get = (name: string, i: number): unknown => col(name)?.(i);
  for (let i = 0; i < table.numRows; i++) {
    const k = KIND_NAMES[String(kind(i))];
    const t = Number(tMs?.(i) ?? 0);
    if (k === 'hello') out.push({ kind: 'hello', tMs: t, dim: Number(get('dim', i) ?? 0) });
    else if (k === 'batch') {
      out.push({
        kind: 'batch',
        tMs: t,
        step: Number(get('step', i)),
        lr: Number(get('lr', i)),
        ids: strings(get('sample_ids', i)),
        sketches: f32(get('sketches', i)),
      });
    } else if (k === 'queries') {
      out.push({
        kind: 'queries',
        tMs: t,
        version: Number(get('version', i)),
        step: Number(get('step', i)),
        ids: strings(get('query_ids', i)),
        groups: strings(get('groups', i)),
        sketches: f32(get('sketches', i)),
      });
    }
  }
  return out;
}

/** Sketch length of a recorded run: from its Hello, a `dim` column, or a batch's shape. */
export function recordedDim(messages: readonly RecordedMessage[]): number {
  for (const m of messages) if (m.kind === 'hello' && m.dim > 0) return m.dim;
  for (const m of messages) if (m.kind !== 'hello' && m.ids.length > 0) return m.sketches.length / m.ids.length;
  throw new Error('cannot tell the sketch length of the recorded run');
}

/**
 * Replays `messages` into the daemon at `address` as run `runId`. `speed` scales the recorded
 * pacing (`t_ms`): 1 = real time, 0 = as fast as the daemon acknowledges.
 */
export async function replayRecordedRun(
  messages: readonly RecordedMessage[],
  o: { address: string; runId: string; speed: number; onProgress?: (p: RecordedRunProgress) => void; signal?: AbortSignal },
): Promise<RecordedRunProgress> {
  const dim = recordedDim(messages);
  const hello = messages.find((m) => m.kind === 'hello');
  const client = new MotiveClient({
    address: o.address,
    runId: o.runId,
    dim,
    dtype: 'float32',
    applyWeights: true,
    ...(hello?.kind === 'hello' && hello.projection !== undefined ? { projection: hello.projection } : {}),
  });
  await client.connect();
  let batches = 0;
  let sketches = 0;
  let querySets = 0;
  let step = 0;
  const started = performance.now();
  try {
    for (const m of messages) {
      if (o.signal?.aborted === true) break;
      if (o.speed > 0) {
        const wait = m.tMs / o.speed - (performance.now() - started);
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      if (m.kind === 'queries') {
        client.setQueries(m.version, m.step, m.ids, m.sketches, m.groups);
        querySets++;
      } else if (m.kind === 'batch') {
        await client.send(m.step, m.lr, m.ids, m.sketches);
        batches++;
        sketches += m.ids.length;
        step = m.step;
        o.onProgress?.({ batches, sketches, querySets, step });
      }
    }
    await client.flush();
    return { batches, sketches, querySets, step };
  } finally {
    client.close();
  }
}
