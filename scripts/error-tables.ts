/**
 * The trainer clients' copies of the daemon's error registry (daemon/shared/errors.ts), rendered
 * from it: the Python hook's `motive_hooks/_errors.py` and the TypeScript client's `errors.ts`.
 * `npm run gen:errors` writes them; a unit test fails when either differs from what this renders.
 */
import { ErrorCodes } from '../daemon/shared/errors.js';

const HEADER = 'Generated from daemon/shared/errors.ts by `npm run gen:errors`; do not edit.';

function table(): Array<{ code: string; message: string; retry: boolean }> {
  return Object.entries(ErrorCodes)
    .map(([code, e]) => ({ code, message: e.message, retry: 'retry' in e && e.retry }))
    .sort((a, b) => (a.code < b.code ? -1 : a.code > b.code ? 1 : 0));
}

/** `trainer-hooks/python/motive_hooks/_errors.py`. */
export function pythonErrorTable(): string {
  const rows = table();
  const lines = [
    `"""The daemon's error codes and which of them a client retries. ${HEADER}"""`,
    '',
    'from typing import Dict, FrozenSet',
    '',
    "#: Every error code, with the daemon's message.",
    'ERROR_MESSAGES: Dict[str, str] = {',
    ...rows.map((r) => `    ${JSON.stringify(r.code)}: ${JSON.stringify(r.message)},`),
    '}',
    '',
    '#: Fatal errors after which a client reconnects and resends; after any other it stops.',
    'RETRYABLE_CODES: FrozenSet[str] = frozenset(',
    '    {',
    ...rows.filter((r) => r.retry).map((r) => `        ${JSON.stringify(r.code)},`),
    '    }',
    ')',
    '',
  ];
  return lines.join('\n');
}

/** A TypeScript string literal as Prettier writes it: single quotes unless the text holds one. */
function tsString(text: string): string {
  return text.includes("'") && !text.includes('"') ? JSON.stringify(text) : `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** `trainer-hooks/ts/errors.ts`. */
export function typescriptErrorTable(): string {
  const rows = table();
  const lines = [
    `/** The daemon's error codes and which of them a client retries. ${HEADER} */`,
    '',
    "/** Every error code, with the daemon's message. */",
    'export const ERROR_MESSAGES: Readonly<Record<string, string>> = {',
    ...rows.map((r) => `  ${r.code}: ${tsString(r.message)},`),
    '};',
    '',
    '/** Fatal errors after which a client reconnects and resends; after any other it stops. */',
    'export const RETRYABLE_CODES: ReadonlySet<string> = new Set([',
    ...rows.filter((r) => r.retry).map((r) => `  '${r.code}',`),
    ']);',
    '',
  ];
  return lines.join('\n');
}
