/**
 * The trainer clients' error tables are the daemon's registry: generated from
 * daemon/shared/errors.ts, used by both clients, and failing here when either side is edited alone.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../../daemon/shared/errors.js';
import { pythonErrorTable, typescriptErrorTable } from '../../../scripts/error-tables.js';
import { ERROR_MESSAGES, RETRYABLE_CODES } from '../../../trainer-hooks/ts/errors.js';

const REPO_ROOT = join(import.meta.dirname, '../../..');
const read = (path: string): string => readFileSync(join(REPO_ROOT, path), 'utf8');

describe('error tables of the trainer clients', () => {
  it('are generated from daemon/shared/errors.ts (run npm run gen:errors)', () => {
    expect(read('trainer-hooks/python/motive_hooks/_errors.py')).toBe(pythonErrorTable());
    expect(read('trainer-hooks/ts/errors.ts')).toBe(typescriptErrorTable());
  });

  it('hold every code with its message and the retryable ones', () => {
    expect(Object.keys(ERROR_MESSAGES).sort()).toEqual(Object.keys(ErrorCodes).sort());
    for (const [code, e] of Object.entries(ErrorCodes)) {
      expect(ERROR_MESSAGES[code]).toBe(e.message);
      expect(RETRYABLE_CODES.has(code), code).toBe('retry' in e);
    }
    // The Python table names the same retryable codes (read as text: this test runs without Python).
    const py = read('trainer-hooks/python/motive_hooks/_errors.py');
    const retryBlock = py.slice(py.indexOf('RETRYABLE_CODES'));
    for (const code of Object.keys(ErrorCodes)) expect(retryBlock.includes(`"${code}"`), code).toBe(RETRYABLE_CODES.has(code));
  });

  it('are what the clients decide retries by, with no list of codes of their own', () => {
    const ts = read('trainer-hooks/ts/client.ts');
    // The Python client's stream (its reader thread decides whether to reconnect) and the rest of it.
    const pyStream = read('trainer-hooks/python/motive_hooks/_transport.py');
    expect(ts).toContain("import { RETRYABLE_CODES } from './errors.js'");
    expect(pyStream).toContain('from ._errors import RETRYABLE_CODES');
    const pyFiles = ['client.py', '_transport.py', '_client_state.py', '_messages.py', 'protocol.py'];
    for (const code of RETRYABLE_CODES) {
      expect(ts.includes(`'${code}'`), `client.ts names ${code} itself`).toBe(false);
      for (const f of pyFiles) {
        const py = read(`trainer-hooks/python/motive_hooks/${f}`);
        expect(py.includes(`"${code}"`), `${f} names ${code} itself`).toBe(false);
      }
    }
  });
});
