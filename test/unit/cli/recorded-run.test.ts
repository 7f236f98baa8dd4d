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

describe('a damaged recorded run', () => {
  const table = new Table({
    message: vectorFromArray([new Uint8Array(300).fill(7), new Uint8Array(300).fill(9)], new Binary()),
    t_ms: vectorFromArray([0, 1], new Float64()),
  });
  const whole = tableToIPC(table, 'file');

  it.each([
    ['cut in half', whole.length / 2, /is truncated: an Arrow IPC file ends with the ARROW1 footer/],
    ['missing its last byte', whole.length - 1, /is truncated/],
    ['only its magic', 8, /is truncated/],
    ['empty', 0, /holds no Arrow schema|not a readable Arrow IPC file/],
  ])('is refused with MOTIVE_REPLAY_FILE when %s', (_name, keep, message) => {
    const path = join(dir.path, `cut-${keep}.arrow`);
    writeFileSync(path, whole.subarray(0, Math.floor(keep)));
    let err: unknown;
    try {
      readRecordedRun(path);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'MOTIVE_REPLAY_FILE' });
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).toContain(path);
  });

  it('is refused by `motive replay` with that message and exit 1', async () => {
    const path = join(dir.path, 'cut-cli.arrow');
    writeFileSync(path, whole.subarray(0, Math.floor(whole.length / 2)));
    const { runCli } = await import('../../../daemon/cli/cli.js');
    let err = '';
    const code = await runCli(['replay', path, '--grpc', '127.0.0.1:1'], { out: () => undefined, err: (s: string) => (err += s) }, {});
    expect(code).toBe(1);
    expect(err).toMatch(/is truncated/);
    expect(err).not.toMatch(/fieldsLength|Cannot read properties/);
  });
});
