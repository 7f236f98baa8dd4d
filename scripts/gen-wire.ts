// Writes the wire message types from schemas/motive.proto (see wire-types.ts).
import { readFileSync, writeFileSync } from 'node:fs';
import { WIRE_TYPE_FILES, wireTypesFile } from './wire-types.js';

const root = new URL('../', import.meta.url);
const proto = readFileSync(new URL('schemas/motive.proto', root), 'utf8');
for (const path of WIRE_TYPE_FILES) {
  const target = new URL(path, root);
  writeFileSync(target, await wireTypesFile(proto, target.pathname));
  console.log(`wrote ${target.pathname}`);
}
