// Writes the trainer clients' error tables from daemon/shared/errors.ts (see error-tables.ts).
import { writeFileSync } from 'node:fs';
import { pythonErrorTable, typescriptErrorTable } from './error-tables.js';

for (const [path, text] of [
  ['../trainer-hooks/python/motive_hooks/_errors.py', pythonErrorTable()],
  ['../trainer-hooks/ts/errors.ts', typescriptErrorTable()],
] as const) {
  const target = new URL(path, import.meta.url);
  writeFileSync(target, text);
  console.log(`wrote ${target.pathname}`);
}
