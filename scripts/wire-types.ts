/**
 * TypeScript types of the wire messages, rendered from schemas/motive.proto: the daemon's copy
 * (`daemon/shared/wire.ts`) and the TypeScript client's (`trainer-hooks/ts/wire.ts`), so that
 * neither restates the contract by hand. `npm run gen:wire` writes them; a unit test fails when a
 * committed copy differs from what this renders from the schema.
 *
 * Each message `X` gives two types:
 * - `XMsg`, what grpc-js hands a reader: the message as `@grpc/proto-loader` decodes it with
 *   `WIRE_DECODE_OPTIONS` (camelCase names, 64-bit integers as numbers, enums by name — or the
 *   number when the name is unknown —, every field present with its default, message fields
 *   `null` when unset, `bytes` as a Buffer, and a oneof as a union tagged by its name);
 * - `XInit`, what a writer may pass: every field optional, 64-bit integers as numbers or decimal
 *   strings, exactly one member of each oneof.
 */
import protobuf from 'protobufjs';
import { format, resolveConfig } from 'prettier';

/** Where the rendered types are committed, relative to the repository root. */
export const WIRE_TYPE_FILES = ['daemon/shared/wire.ts', 'trainer-hooks/ts/wire.ts'] as const;

const HEADER = 'Generated from schemas/motive.proto by `npm run gen:wire` (scripts/wire-types.ts); do not edit.';

const LONGS = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const NUMBERS = new Set(['double', 'float', 'int32', 'uint32', 'sint32', 'fixed32', 'sfixed32']);

type Side = 'Msg' | 'Init';

function doc(comment: string | null, indent = ''): string[] {
  if (comment === null || comment.trim() === '') return [];
  return [`${indent}/** ${comment.trim().replace(/\*\//g, '*\\/')} */`];
}

/** The TypeScript type of one value of `field` (not of the repeated list). */
function valueType(field: protobuf.Field, side: Side): string {
  const t = field.resolvedType;
  if (t instanceof protobuf.Enum) return `${t.name} | number`;
  if (t instanceof protobuf.Type) return `${t.name}${side}`;
  if (LONGS.has(field.type)) return side === 'Msg' ? 'number' : 'number | string';
  if (NUMBERS.has(field.type)) return 'number';
  if (field.type === 'bool') return 'boolean';
  if (field.type === 'string') return 'string';
  if (field.type === 'bytes') return side === 'Msg' ? 'Buffer' : 'Uint8Array';
  throw new Error(`${field.fullName}: no TypeScript type for proto type ${field.type}`);
}

function fieldType(field: protobuf.Field, side: Side): string {
  const v = valueType(field, side);
  if (field.repeated) {
    const item = v.includes(' ') ? `(${v})` : v;
    return side === 'Msg' ? `${item}[]` : `readonly ${item}[]`;
  }
  if (field.resolvedType instanceof protobuf.Type && field.partOf === null) return `${v} | null`;
  return v;
}

function fieldLine(field: protobuf.Field, side: Side, optional: boolean): string[] {
  return [...doc(field.comment, '  '), `  readonly ${field.name}${optional ? '?' : ''}: ${fieldType(field, side)};`];
}

/** One arm per member of `oneof`: tagged by the oneof's name when read, the member alone when written. */
function oneofUnion(oneof: protobuf.OneOf, side: Side): string {
  const members = oneof.fieldsArray;
  const arms = members.map((m) => {
    if (side === 'Msg') return `{ readonly ${oneof.name}: '${m.name}'; readonly ${m.name}: ${valueType(m, side)} }`;
    const others = members.filter((o) => o !== m).map((o) => `readonly ${o.name}?: never`);
    return `{ readonly ${m.name}: ${valueType(m, side)}; ${others.join('; ')} }`;
  });
  // A decoded message may have no member set (an empty or unknown body).
  if (side === 'Msg') arms.push(`{ readonly ${oneof.name}?: undefined }`);
  return `(${arms.join(' | ')})`;
}

function messageType(type: protobuf.Type, side: Side): string[] {
  for (const f of type.fieldsArray) if (f.map) throw new Error(`${f.fullName}: map fields are not supported by the generator`);
  const plain = type.fieldsArray.filter((f) => f.partOf === null);
  const name = `${type.name}${side}`;
  const lines = doc(type.comment);
  if (type.oneofsArray.length === 0) {
    lines.push(`export interface ${name} {`, ...plain.flatMap((f) => fieldLine(f, side, side === 'Init')), '}');
    return lines;
  }
  const parts = type.oneofsArray.map((o) => oneofUnion(o, side));
  if (plain.length > 0) parts.unshift(`{\n${plain.flatMap((f) => fieldLine(f, side, side === 'Init')).join('\n')}\n}`);
  lines.push(`export type ${name} = ${parts.join(' & ')};`);
  return lines;
}

function enumType(e: protobuf.Enum): string[] {
  return [
    ...doc(e.comment),
    `export type ${e.name} = ${Object.keys(e.values)
      .map((v) => `'${v}'`)
      .join(' | ')};`,
  ];
}

/** The types of every message and enum of the schema's package, unformatted. */
export function renderWireTypes(protoText: string): string {
  const { root, package: pkg } = protobuf.parse(protoText, { keepCase: false, alternateCommentMode: true, preferTrailingComment: true });
  if (pkg === undefined) throw new Error('the schema declares no package');
  root.resolveAll();
  const ns = root.lookup(pkg);
  if (!(ns instanceof protobuf.Namespace)) throw new Error(`package ${pkg} not found`);
  const out = [
    `/**`,
    ` * Types of the ${pkg} wire messages. ${HEADER}`,
    ` *`,
    ` * \`XMsg\`: a message as grpc-js decodes it with {@link WIRE_DECODE_OPTIONS}; \`XInit\`: what may be`,
    ` * written (every field optional, one member per oneof).`,
    ` */`,
    '',
    '/** The `@grpc/proto-loader` options the `…Msg` types describe; load the schema with these. */',
    'export const WIRE_DECODE_OPTIONS = { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true } as const;',
  ];
  for (const item of ns.nestedArray) {
    if (item instanceof protobuf.Enum) out.push('', ...enumType(item));
    else if (item instanceof protobuf.Type) out.push('', ...messageType(item, 'Msg'), '', ...messageType(item, 'Init'));
  }
  out.push('');
  return out.join('\n');
}

/** The committed file's text: {@link renderWireTypes} as Prettier formats it with the repository's settings. */
export async function wireTypesFile(protoText: string, filePath: string): Promise<string> {
  const options = (await resolveConfig(filePath)) ?? {};
  return format(renderWireTypes(protoText), { ...options, filepath: filePath });
}
