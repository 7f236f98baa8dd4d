/**
 * Hostile peers against the REST inputs: values of the wrong JSON type are refused, not coerced;
 * unknown properties are refused, not dropped; query numbers must be plain finite decimals;
 * extreme numbers; and injection in every string the daemon echoes back (docs/api.md).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MotiveClient } from '../../trainer-hooks/ts/index.js';
import { startTestDaemon } from '../helpers/daemon.js';

describe('REST input is taken as sent', () => {
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  let url: string;
  beforeAll(async () => {
    daemon = await startTestDaemon();
    url = `http://127.0.0.1:${daemon.httpPort}`;
    const c = new MotiveClient({ dtype: 'float32', address: `127.0.0.1:${daemon.grpcPort}`, runId: 'in', dim: 3 });
    await c.connect();
    c.setQueries(1, 0, ['q'], Float32Array.from([1, 0, 0]));
    await c.send(0, 0.1, ['a', 'b'], Float32Array.from([1, 0, 0, 0, 1, 0]));
    await c.flush();
    c.close();
  });
  afterAll(async () => daemon.cleanup());

  const post = async (path: string, body: string) => {
    const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    return { status: res.status, json: (await res.json()) as { code?: string; message?: string; samples?: unknown[] } };
  };

  it.each([
    ['null', '{"sketch": [1, null, 0]}'],
    ['true', '{"sketch": [1, true, 0]}'],
    ['"1e3"', '{"sketch": [1, "1e3", 0]}'],
    ['a nested array', '{"sketch": [1, [0], 0]}'],
    ['beyond float32', '{"sketch": [1, 1e39, 0]}'],
    ['1e308', '{"sketch": [1e308, 0, 0]}'],
    ['a string sketch', '{"sketch": "1,0,0"}'],
  ])('/attribute refuses %s in the sketch with MOTIVE_API_BAD_SKETCH', async (_name, body) => {
    const res = await post('/v1/runs/in/attribute', body);
    expect(res.status).toBe(400);
    expect(res.json.code).toBe('MOTIVE_API_BAD_SKETCH');
  });

  it.each([
    ['an unknown property', '{"sketch": [1, 0, 0], "limt": 5}'],
    ['a string limit', '{"sketch": [1, 0, 0], "limit": "5"}'],
    ['a fractional limit', '{"sketch": [1, 0, 0], "limit": 2.5}'],
    ['a huge limit', '{"sketch": [1, 0, 0], "limit": 1e308}'],
  ])('/attribute refuses %s with 400', async (_name, body) => {
    const res = await post('/v1/runs/in/attribute', body);
    expect(res.status).toBe(400);
    expect(res.json.code).toBe('MOTIVE_API_BAD_REQUEST');
  });

  it('/attribute answers a well-formed request', async () => {
    const res = await post('/v1/runs/in/attribute', '{"sketch": [1, 0, 0], "limit": 1}');
    expect(res.status).toBe(200);
    expect(res.json.samples).toHaveLength(1);
  });

  it.each(['Infinity', '-Infinity', 'NaN', '1e999', '0x10', '', ' 0.3', '0.3abc', '0.75', '0'])(
    '/explain refuses fraction=%s with 400',
    async (fraction) => {
      const res = await fetch(`${url}/v1/runs/in/explain?fraction=${encodeURIComponent(fraction)}`);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { code: string }).code).toBe('MOTIVE_API_BAD_REQUEST');
    },
  );

  it.each(['0.3', '.5', '5e-1', '2.5E-1'])('/explain takes fraction=%s', async (fraction) => {
    const res = await fetch(`${url}/v1/runs/in/explain?fraction=${fraction}`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { fraction: number }).fraction).toBe(Number(fraction));
  });

  it('query integers are plain decimals; ?token= is accepted; unknown parameters are refused', async () => {
    expect((await fetch(`${url}/v1/runs/in/samples?limit=1`)).status).toBe(200);
    expect((await fetch(`${url}/v1/runs/in/samples?limit=1&token=whatever`)).status).toBe(200);
    for (const q of ['limit=1.5', 'limit=1e400', 'limit=true', 'limt=1', 'order=worst'])
      expect((await fetch(`${url}/v1/runs/in/samples?${q}`)).status, q).toBe(400);
  });

  it('echoes injected strings only inside JSON bodies, never into headers', async () => {
    for (const path of [
      '/v1/runs/in/samples/%0d%0aSet-Cookie:%20injected=1',
      '/v1/runs/%3Cscript%3Ealert(1)%3C%2Fscript%3E',
      '/v1/runs/in%0d%0aX-Injected:%201/samples',
      '/v1/runs/in/samples?order=%0d%0aSet-Cookie:%20injected=1',
    ]) {
      const res = await fetch(`${url}${path}`);
      expect([400, 404], path).toContain(res.status);
      expect(res.headers.get('content-type'), path).toMatch(/^application\/json/);
      expect(res.headers.get('set-cookie'), path).toBeNull();
      expect(res.headers.get('x-injected'), path).toBeNull();
      const body = (await res.json()) as { code: string; message: string };
      expect(body.code, path).toMatch(/^MOTIVE_API_/);
    }
  });
});
