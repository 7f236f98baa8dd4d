/**
 * The wire message types are the schema's: generated from schemas/motive.proto into the daemon's
 * and the TypeScript client's copies, failing here when the schema or a copy is edited alone, and
 * describing what grpc-js really decodes with the options they name.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { loadAttributionService, PROTO_LOADER_OPTIONS } from '../../../daemon/ingest/index.js';
import { WIRE_DECODE_OPTIONS } from '../../../daemon/shared/wire.js';
import { renderWireTypes, WIRE_TYPE_FILES, wireTypesFile } from '../../../scripts/wire-types.js';

const REPO_ROOT = join(import.meta.dirname, '../../..');
const read = (path: string): string => readFileSync(join(REPO_ROOT, path), 'utf8');
const PROTO = read('schemas/motive.proto');

describe('wire message types', () => {
  it('are generated from schemas/motive.proto (run npm run gen:wire)', async () => {
    for (const path of WIRE_TYPE_FILES) expect(read(path), path).toBe(await wireTypesFile(PROTO, join(REPO_ROOT, path)));
  });

  it('change when the schema gains a field', async () => {
    const edited = PROTO.replace(
      '  uint64 seq = 1;             // sent only after',
      '  uint64 seq = 1;\n  bool late = 2; // sent only after',
    );
    expect(edited).not.toBe(PROTO);
    const path = join(REPO_ROOT, WIRE_TYPE_FILES[0]);
    const text = await wireTypesFile(edited, path);
    expect(text).not.toBe(read(WIRE_TYPE_FILES[0]));
    expect(text).toContain('readonly late: boolean;');
  });

  it('map each proto type as the decoding options make grpc-js decode it', () => {
    const text = renderWireTypes(`
      syntax = "proto3";
      package t.v1;
      enum Kind { KIND_UNSPECIFIED = 0; A = 1; }
      message Inner { string name = 1; }
      message Outer {
        uint64 big = 1;       // a counter
        uint32 small = 2;
        double x = 3;
        bytes raw = 4;
        Kind kind = 5;
        Inner inner = 6;
        repeated Inner items = 7;
        repeated uint64 ids = 8;
        oneof body { Inner one = 9; string two = 10; }
      }`);
    expect(text).toContain("export type Kind = 'KIND_UNSPECIFIED' | 'A';");
    expect(text).toContain('/** a counter */\n  readonly big: number;');
    expect(text).toContain('readonly small: number;');
    expect(text).toContain('readonly x: number;');
    expect(text).toContain('readonly raw: Buffer;');
    expect(text).toContain('readonly kind: Kind | number;');
    expect(text).toContain('readonly inner: InnerMsg | null;');
    expect(text).toContain('readonly items: InnerMsg[];');
    expect(text).toContain("{ readonly body: 'one'; readonly one: InnerMsg } | { readonly body: 'two'; readonly two: string }");
    expect(text).toContain('readonly big?: number | string;');
    expect(text).toContain('readonly raw?: Uint8Array;');
    expect(text).toContain('readonly ids?: readonly (number | string)[];');
    expect(text).toContain('{ readonly one: InnerInit; readonly two?: never } | { readonly two: string; readonly one?: never }');
    expect(() => renderWireTypes('syntax = "proto3"; package t; message M { map<string, string> m = 1; }')).toThrow(/map fields/);
  });

  it('describe what the daemon decodes: defaults filled, longs as numbers, enums by name, unset messages null', () => {
    expect(PROTO_LOADER_OPTIONS).toBe(WIRE_DECODE_OPTIONS);
    const root = protobuf.parse(PROTO).root;
    const Trainer = root.lookupType('motive.v1.TrainerMessage');
    const { service } = loadAttributionService();
    const decode = (obj: object): Record<string, unknown> =>
      service['Attach']!.requestDeserialize(Buffer.from(Trainer.encode(Trainer.fromObject(obj)).finish())) as Record<string, unknown>;

    const batch = decode({ batch: { seq: 2 ** 40 + 3, sampleIds: ['a'] } });
    expect(Object.keys(batch).sort()).toEqual(['batch', 'body']);
    expect(batch['body']).toBe('batch');
    const b = batch['batch'] as Record<string, unknown>;
    const fields = (name: string): string[] => root.lookupType(`motive.v1.${name}`).fieldsArray.map((f) => f.name);
    expect(Object.keys(b).sort()).toEqual(fields('SketchBatch').sort());
    expect(b['seq']).toBe(2 ** 40 + 3);
    expect(Buffer.isBuffer(b['sketches'])).toBe(true);
    expect([b['jobIds'], b['features'], b['deferred'], b['snapshotStep']]).toEqual([[], [], false, 0]);

    const hello = decode({ hello: { runId: 'r', dtype: 2 } })['hello'] as Record<string, unknown>;
    expect(Object.keys(hello).sort()).toEqual(fields('Hello').sort());
    expect(hello['projection']).toBeNull();
    expect(hello['dtype']).toBe('FLOAT16');
    expect(hello['featureNames']).toEqual([]);
    // An enum number the schema does not name stays a number (`DType | number`).
    const unknown = Buffer.from([0x0a, 0x02, 0x28, 0x07]); // TrainerMessage.hello { dtype: 7 }
    expect((service['Attach']!.requestDeserialize(unknown) as { hello: { dtype: unknown } }).hello.dtype).toBe(7);

    expect(decode({})['body']).toBeUndefined();
  });

  it('are what the daemon, the client and the replay use, with no message shapes of their own', () => {
    expect(read('daemon/ingest/proto.ts')).not.toMatch(/interface \w+Msg\b/);
    expect(read('trainer-hooks/ts/client.ts')).toContain("from './wire.js'");
    expect(read('trainer-hooks/ts/client.ts')).not.toMatch(/keepCase|interface DaemonMessage/);
    expect(read('daemon/cli/recorded-run.ts')).toContain("from '../shared/wire.js'");
  });
});
