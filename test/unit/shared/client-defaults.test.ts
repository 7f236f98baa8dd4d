/**
 * The two trainer clients start from the same defaults (docs/wire.md, "Client defaults"): read from
 * the Python client's source (this test runs without Python) and from the TypeScript client.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLIENT_DEFAULTS, MAX_UNCONFIRMED_QUERIES, MotiveClient } from '../../../trainer-hooks/ts/client.js';

const REPO_ROOT = join(import.meta.dirname, '../../..');
const read = (path: string): string => readFileSync(join(REPO_ROOT, path), 'utf8');

/** The keyword defaults of `MotiveClient.__init__` in client.py, as Python literals. */
function pythonDefaults(): Map<string, string> {
  const src = read('trainer-hooks/python/motive_hooks/client.py');
  const start = src.indexOf('def __init__(', src.indexOf('class MotiveClient:'));
  const signature = src.slice(start, src.indexOf(') -> None:', start));
  const out = new Map<string, string>();
  for (const m of signature.matchAll(/^\s+(\w+): [^=\n]+ = (.+),$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

/** A module-level constant of a Python source, as a Python literal. */
function pythonConstant(path: string, name: string): string {
  const m = new RegExp(`^${name}(?:: \\w+)? = (.+)$`, 'm').exec(read(path));
  if (m === null) throw new Error(`${path} defines no ${name}`);
  return m[1]!;
}

const py = pythonDefaults();
const pyFloat = (name: string): number => Number(py.get(name));
const pyString = (literal: string | undefined): string => JSON.parse(literal ?? 'null') as string;

describe('trainer client defaults', () => {
  it('reads the Python signature', () => {
    expect(py.get('dtype')).toBeDefined();
    expect(py.get('max_unacked')).toBeDefined();
  });

  it('are the same in the TypeScript and the Python client', () => {
    expect(CLIENT_DEFAULTS.dtype).toBe(pyString(py.get('dtype')));
    expect(py.get('projection_kind')).toBe('PROJECTION_KIND');
    expect(CLIENT_DEFAULTS.projectionKind).toBe(pyString(pythonConstant('trainer-hooks/python/motive_hooks/sketch.py', 'PROJECTION_KIND')));
    expect(CLIENT_DEFAULTS.seed).toBe(pyFloat('seed'));
    expect(CLIENT_DEFAULTS.fingerprint).toBe(pyString(py.get('fingerprint')));
    expect(py.get('apply_weights')).toBe(CLIENT_DEFAULTS.applyWeights ? 'True' : 'False');
    expect(CLIENT_DEFAULTS.maxUnacked).toBe(pyFloat('max_unacked'));
    expect(CLIENT_DEFAULTS.reconnectDelayMs).toBe(pyFloat('backoff_s') * 1000);
    expect(CLIENT_DEFAULTS.maxReconnectDelayMs).toBe(pyFloat('max_backoff_s') * 1000);
    expect(CLIENT_DEFAULTS.maxUnconfirmedQueries).toBe(
      Number(pythonConstant('trainer-hooks/python/motive_hooks/protocol.py', 'MAX_UNCONFIRMED_QUERIES')),
    );
    expect(MAX_UNCONFIRMED_QUERIES).toBe(CLIENT_DEFAULTS.maxUnconfirmedQueries);
  });

  it('are what a TypeScript client built without options uses', () => {
    const c = new MotiveClient({ address: '127.0.0.1:1', runId: 'r', dim: 2 });
    try {
      expect(c.options.dtype).toBe(CLIENT_DEFAULTS.dtype);
      expect(c.options.maxUnacked).toBe(CLIENT_DEFAULTS.maxUnacked);
      expect(c.options.reconnectDelayMs).toBe(CLIENT_DEFAULTS.reconnectDelayMs);
      expect(c.options.maxReconnectDelayMs).toBe(CLIENT_DEFAULTS.maxReconnectDelayMs);
      expect(c.options.applyWeights).toBe(CLIENT_DEFAULTS.applyWeights);
    } finally {
      c.close();
    }
  });
});
