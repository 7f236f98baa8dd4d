import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../daemon/config/index.js';
import { configSchemaJson } from '../../../scripts/config-schema-json.js';
import { REPO_ROOT, tempDir } from '../../helpers/daemon.js';

describe('configuration', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({ env: {} });
    expect(c.grpc).toMatchObject({ host: '127.0.0.1', port: 50051 });
    expect(c.http).toMatchObject({ host: '127.0.0.1', port: 8080 });
    expect(c.score.normalize).toBe('cosine');
    expect(Object.isFrozen(c) && Object.isFrozen(c.grpc)).toBe(true);
  });

  it('layers file ← env, and names the bad field', () => {
    const dir = tempDir();
    const file = join(dir.path, 'motive.json');
    writeFileSync(file, JSON.stringify({ grpc: { port: 6000 }, weights: { beta: 2 } }));
    const c = loadConfig({ env: { MOTIVE_CONFIG: file, MOTIVE_GRPC_PORT: '7000', MOTIVE_HTTP_PORT: '7001', MOTIVE_DATA_DIR: '/tmp/x' } });
    expect(c.grpc.port).toBe(7000);
    expect(c.http.port).toBe(7001);
    expect(c.dataDir).toBe('/tmp/x');
    expect(c.weights.beta).toBe(2);
    expect(() => loadConfig({ env: { MOTIVE_GRPC_PORT: 'abc' } })).toThrow(/MOTIVE_GRPC_PORT must be an integer/);
    expect(() => loadConfig({ env: { MOTIVE_HTTP_PORT: '70000' } })).toThrow(/http\.port/);
    writeFileSync(file, JSON.stringify({ grpc: { prot: 1 } }));
    expect(() => loadConfig({ env: { MOTIVE_CONFIG: file } })).toThrow(/grpc/);
    // Sample ids longer than a record frame's u16 length field could not be stored.
    writeFileSync(file, JSON.stringify({ limits: { maxSampleIdBytes: 65536 } }));
    expect(() => loadConfig({ env: { MOTIVE_CONFIG: file } })).toThrow(/maxSampleIdBytes/);
    writeFileSync(file, '{not json');
    expect(() => loadConfig({ env: { MOTIVE_CONFIG: file } })).toThrow(/not valid JSON/);
    dir.remove();
  });

  it('schemas/config.schema.json is generated from the source (run npm run gen:config-schema)', () => {
    expect(readFileSync(join(REPO_ROOT, 'schemas/config.schema.json'), 'utf8')).toBe(configSchemaJson());
  });

  it('config/default.json is valid and equals the defaults', () => {
    const file = join(REPO_ROOT, 'config/default.json');
    expect(loadConfig({ env: { MOTIVE_CONFIG: file } })).toEqual(loadConfig({ env: {} }));
  });
});
