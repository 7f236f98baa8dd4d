/** Reading a recorded run (Arrow IPC) in both accepted layouts. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Binary, Field, Float64, Int32, List, Table, Utf8, tableToIPC, vectorFromArray } from 'apache-arrow';
import protobuf from 'protobufjs';
import { afterAll, describe, expect, it } from 'vitest';
import { readRecordedRun, recordedDim } from '../../../daemon/cli/recorded-run.js';
import { REPO_ROOT, tempDir } from '../../helpers/daemon.js';

const dir = tempDir('motive-recorded-');
afterAll(() => dir.remove());

const bytes = (values: number[]): Uint8Array => new Uint8Array(Float32Array.from(values).buffer);

describe('readRecordedRun', () => {
  it('reads serialized TrainerMessages from a "message" column', () => {
    const Trainer = protobuf.loadSync(join(REPO_ROOT, 'schemas/motive.proto')).lookupType('motive.v1.TrainerMessage');
    const enc = (m: object): Uint8Array => Trainer.encode(Trainer.fromObject(m)).finish();
    const rows = [
      enc({ hello: { runId: 'r', rank: 0, worldSize: 1, projection: { kind: 'gaussian', seed: 5, dim: 2, fingerprint: 'fp' }, dtype: 1 } }),
      enc({ queries: { version: 1, step: 0, queryIds: ['q0'], groups: ['motion'], sketches: bytes([1, 0]) } }),
      enc({ batch: { seq: 1, step: 3, lr: 0.5, sampleIds: ['a', 'b'], sketches: bytes([1, 2, 3, 4]) } }),
    ];
    const table = new Table({ message: vectorFromArray(rows, new Binary()), t_ms: vectorFromArray([0, 1, 2], new Float64()) });
    const path = join(dir.path, 'message.arrow');
    writeFileSync(path, tableToIPC(table, 'file'));
    const run = readRecordedRun(path);
    expect(run.map((m) => m.kind)).toEqual(['hello', 'queries', 'batch']);
    expect(recordedDim(run)).toBe(2);
    const b = run[2]!;
    if (b.kind !== 'batch') throw new Error('expected a batch');
    expect([...b.sketches]).toEqual([1, 2, 3, 4]);
    expect(b).toMatchObject({ step: 3, lr: 0.5, ids: ['a', 'b'], tMs: 2 });
    expect(run[0]).toMatchObject({ projection: { kind: 'gaussian', seed: '5', fingerprint: 'fp' } });
  });

  it('reads the exploded layout and refuses a file with neither', () => {
    const strList = new List(new Field('item', new Utf8(), true));
    const table = new Table({
      kind: vectorFromArray(['queries', 'batch'], new Utf8()),
      step: vectorFromArray([0, 7], new Int32()),
      lr: vectorFromArray([0, 0.25], new Float64()),
      version: vectorFromArray([1, 0], new Int32()),
      sample_ids: vectorFromArray([[], ['x']], strList),
      query_ids: vectorFromArray([['q0', 'q1'], []], strList),
      sketches: vectorFromArray([bytes([1, 0, 0, 1]), bytes([0.5, 0.5])], new Binary()),
    });
    const path = join(dir.path, 'exploded.arrow');
    writeFileSync(path, tableToIPC(table, 'file'));
    const run = readRecordedRun(path);
    expect(run).toHaveLength(2);
    expect(run[0]).toMatchObject({ kind: 'queries', version: 1, ids: ['q0', 'q1'] });
    expect(run[1]).toMatchObject({ kind: 'batch', step: 7, lr: 0.25, ids: ['x'] });
    expect(recordedDim(run)).toBe(2);

    const bad = join(dir.path, 'bad.arrow');
    writeFileSync(bad, tableToIPC(new Table({ other: vectorFromArray([1], new Int32()) }), 'file'));
    expect(() => readRecordedRun(bad)).toThrow(/columns: other/);
  });
});
