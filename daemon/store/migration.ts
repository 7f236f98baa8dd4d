/**
 * The store format, and the move from older formats at start-up (docs/store.md, first section):
 * a format 5 store is read as it is; a format 3 or 4 store's sample records, an LMDB environment
 * of their own under `dataDir/samples`, are moved into record segments first.
 */
import { mkdirSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { MotiveError } from '../shared/index.js';
import { writeWeightBody } from './codec.js';
import {
  FRAME_RECORD,
  FRAME_WEIGHT,
  RunSegments,
  WEIGHT_BODY_BYTES,
  beginFrame,
  bodyOffset,
  frameBytes,
  runSegmentsDir,
  sealFrame,
} from './segments.js';
import { openEnv, runRange } from './tables.js';

/**
 * Bumped whenever the on-disk layout changes incompatibly. Format 6 logs each batch's wire dtype
 * (a format 5 entry has none and is read in its run's dtype, as it was written).
 */
export const STORE_FORMAT_VERSION = 6;

/** Formats before {@link STORE_FORMAT_VERSION} this daemon still opens. */
const OLDER_FORMATS: readonly number[] = [3, 4, 5];

/** MOTIVE_STORE_FORMAT unless this daemon opens a store of `format` (undefined: a new store). */
export function checkFormat(format: number | undefined, dataDir: string): void {
  if (format === undefined || format === STORE_FORMAT_VERSION || OLDER_FORMATS.includes(format)) return;
  throw new MotiveError(
    'MOTIVE_STORE_FORMAT',
    `${dataDir} holds format ${String(format)}, this daemon reads format ${STORE_FORMAT_VERSION}`,
  );
}

/** Whether a store of `format` keeps its sample records in an LMDB environment of their own. */
export function hasSamplesEnv(format: number | undefined): boolean {
  return format === 3 || format === 4;
}

/** A whole frame holding `body` (used where frames are written one by one). */
function encodeFrame(kind: number, id: string, body: Uint8Array): Buffer {
  const idBytes = Buffer.byteLength(id);
  const frame = Buffer.alloc(frameBytes(idBytes, body.length));
  beginFrame(frame, kind, id, idBytes, body.length);
  frame.set(body, bodyOffset(idBytes));
  sealFrame(frame);
  return frame;
}

/** Frames gathered per append while moving records. */
const MOVE_BATCH_BYTES = 8 << 20;

/**
 * Moves the sample records and weight entries of a format 3 or 4 store (an LMDB samples
 * environment under `dataDir/samples`) into record segments. Started over from nothing by the
 * next start-up if it is interrupted: the store stays format 3 or 4 until it is done.
 */
export async function moveSampleRecords(dataDir: string, runIds: readonly string[], mapSize: number, segmentBytes: number): Promise<void> {
  const recordsDir = join(dataDir, 'records');
  rmSync(recordsDir, { recursive: true, force: true });
  mkdirSync(recordsDir, { recursive: true });
  if (!existsSync(join(dataDir, 'samples'))) return;
  const env = openEnv(join(dataDir, 'samples'), mapSize);
  try {
    const samplesDb = env.openDB<Buffer, [string, string]>({ name: 'samples', encoding: 'binary' });
    const weightsDb = env.openDB<Buffer, [string, string]>({ name: 'weights', encoding: 'binary' });
    for (const runId of runIds) {
      const segments = RunSegments.open(runSegmentsDir(recordsDir, runId), runId, segmentBytes);
      try {
        let batch: Buffer[] = [];
        let bytes = 0;
        const add = async (frame: Buffer): Promise<void> => {
          batch.push(frame);
          bytes += frame.length;
          if (bytes < MOVE_BATCH_BYTES) return;
          await segments.append(batch);
          batch = [];
          bytes = 0;
        };
        for (const { key, value } of samplesDb.getRange(runRange(runId))) await add(encodeFrame(FRAME_RECORD, key[1], value));
        for (const { key, value } of weightsDb.getRange(runRange(runId))) {
          const body = Buffer.alloc(WEIGHT_BODY_BYTES);
          writeWeightBody(body, 0, value.readDoubleLE(0), value.readFloatLE(8));
          await add(encodeFrame(FRAME_WEIGHT, key[1], body));
        }
        if (batch.length > 0) await segments.append(batch);
      } finally {
        await segments.close();
      }
    }
  } finally {
    await env.close();
  }
}

/** Removes the samples environment of a format 3 or 4 store, once its records are in segments. */
export function removeSamplesEnv(dataDir: string): void {
  rmSync(join(dataDir, 'samples'), { recursive: true, force: true });
}
