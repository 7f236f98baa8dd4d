/** Python capture files → Arrow recordings that `motive replay` and `motive demo` read. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { afterAll, describe, expect, it } from 'vitest';
import { readRecordedRun } from '../../../daemon/cli/recorded-run.js';
import { CAPTURE_MAGIC, captureToArrow, isCapture, parseCapture } from '../../../daemon/replay/index.js';
import { REPO_ROOT, tempDir } from '../../helpers/daemon.js';

const dir = tempDir('motive-capture-');
afterAll(() => dir.remove());

const Trainer = protobuf.loadSync(join(REPO_ROOT, 'schemas/motive.proto')).lookupType('motive.v1.TrainerMessage');
const enc = (m: object): Uint8Array => Trainer.encode(Trainer.fromObject(m)).finish();
const f32 = (values: number[]): Uint8Array => new Uint8Array(Float32Array.from(values).buffer);

/** A capture written byte by byte as the Python side does (struct '<IBId'). */
function capture(records: Array<[number, number, number, Uint8Array]>): Uint8Array {
  const parts: Buffer[] = [Buffer.from(CAPTURE_MAGIC, 'latin1')];
  for (const [kind, rank, tMs, body] of records) {
    const h = Buffer.alloc(17);
    h.writeUInt32LE(body.byteLength, 0);
    h.writeUInt8(kind, 4);
    h.writeUInt32LE(rank, 5);
    h.writeDoubleLE(tMs, 9);
    parts.push(h, Buffer.from(body));
  }
  return new Uint8Array(Buffer.concat(parts));
}

describe('capture files', () => {
  const hello = enc({
    hello: { runId: 'r', rank: 0, worldSize: 1, projection: { kind: 'k', seed: 3, dim: 2, fingerprint: 'fp' }, dtype: 1 },
  });
  const queries = enc({ queries: { version: 1, step: 0, queryIds: ['q'], groups: ['motion'], sketches: f32([0, 1]) } });
  const batch = enc({ batch: { seq: 1, step: 4, lr: 0.01, sampleIds: ['a', 'b'], sketches: f32([1, 0, 0.5, 0.5]) } });
  const bytes = capture([
    [1, 0, 0, hello],
    [3, 0, 1.5, queries],
    [2, 0, 2.25, batch],
  ]);

  it('parses records and converts them to an Arrow recording readRecordedRun reads', () => {
    expect(isCapture(bytes)).toBe(true);
    const msgs = parseCapture(bytes);
    expect(msgs.map((m) => [m.kind, m.rank, m.tMs])).toEqual([
      ['hello', 0, 0],
      ['queries', 0, 1.5],
      ['batch', 0, 2.25],
    ]);
    const path = join(dir.path, 'run.arrow');
    writeFileSync(path, captureToArrow(msgs));
    const run = readRecordedRun(path);
    expect(run.map((m) => m.kind)).toEqual(['hello', 'queries', 'batch']);
    const b = run[2]!;
    if (b.kind !== 'batch') throw new Error('expected a batch');
    expect([...b.sketches]).toEqual([1, 0, 0.5, 0.5]);
    expect(b).toMatchObject({ step: 4, ids: ['a', 'b'], tMs: 2.25 });
  });

  it('refuses truncated records and files without the magic', () => {
    expect(() => parseCapture(bytes.subarray(0, bytes.byteLength - 3))).toThrow(/truncated record/);
    expect(() => parseCapture(new Uint8Array([1, 2, 3]))).toThrow(/MOTCAP1/);
  });
});
