/**
 * Roles on every edge: each REST route and the gRPC Attach stream, with no token, a wrong token,
 * and each role (trainer, viewer, admin, and a token limited to other runs): allowed or denied as
 * docs/security.md says. Also TLS for gRPC and HTTP.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MotiveClient } from '../../trainer-hooks/ts/index.js';
import { startTestDaemon, tempDir } from '../helpers/daemon.js';
import { hello, rawStream, type DaemonReply } from '../helpers/raw-stream.js';

const TOKENS = {
  trainer: 'tok-trainer-0001',
  viewer: 'tok-viewer-00001',
  admin: 'tok-admin-000001',
  otherRuns: 'tok-viewer-other',
  otherTrainer: 'tok-trainer-other',
};
type Who = 'none' | 'wrong' | keyof typeof TOKENS;
const WHO: Who[] = ['none', 'wrong', 'trainer', 'viewer', 'admin', 'otherRuns', 'otherTrainer'];

function tokenOf(who: Who): string | undefined {
  if (who === 'none') return undefined;
  if (who === 'wrong') return 'not-a-valid-token';
  return TOKENS[who];
}

describe('roles', () => {
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  const dir = tempDir();
  beforeAll(async () => {
    daemon = await startTestDaemon({
      auth: {
        tokens: [
          { name: 'trainer', token: TOKENS.trainer, role: 'trainer', runs: null },
          { name: 'viewer', token: TOKENS.viewer, role: 'viewer', runs: null },
          { name: 'admin', token: TOKENS.admin, role: 'admin', runs: null },
          { name: 'other-viewer', token: TOKENS.otherRuns, role: 'viewer', runs: ['other'] },
          { name: 'other-trainer', token: TOKENS.otherTrainer, role: 'trainer', runs: ['other'] },
        ],
      },
    });
    const c = new MotiveClient({
      dtype: 'float32',
      address: `127.0.0.1:${daemon.grpcPort}`,
      runId: 'secure',
      dim: 4,
      token: TOKENS.trainer,
    });
    await c.connect();
    c.setQueries(1, 0, ['q'], Float32Array.from([1, 0, 0, 0]));
    await c.send(0, 0.1, ['a', 'b'], Float32Array.from([1, 0, 0, 0, 0, 1, 0, 0]));
    await c.flush();
    c.close();
  });
  afterAll(async () => {
    await daemon.cleanup();
    dir.remove();
  });

  const routes: Array<{ name: string; method: string; path: string; body?: unknown; allowed: Who[] }> = [
    { name: 'health', method: 'GET', path: '/healthz', allowed: WHO },
    { name: 'runs', method: 'GET', path: '/v1/runs', allowed: ['viewer', 'admin', 'otherRuns'] },
    { name: 'run', method: 'GET', path: '/v1/runs/secure', allowed: ['viewer', 'admin'] },
    { name: 'samples', method: 'GET', path: '/v1/runs/secure/samples', allowed: ['viewer', 'admin'] },
    { name: 'sample', method: 'GET', path: '/v1/runs/secure/samples/a', allowed: ['viewer', 'admin'] },
    { name: 'clip page', method: 'GET', path: '/runs/secure/clips/a', allowed: ['viewer', 'admin'] },
    { name: 'page style', method: 'GET', path: '/page/motive.css', allowed: WHO },
    { name: 'weights', method: 'GET', path: '/v1/runs/secure/weights', allowed: ['viewer', 'admin'] },
    { name: 'attribute', method: 'POST', path: '/v1/runs/secure/attribute', body: { sketch: [1, 0, 0, 0] }, allowed: ['viewer', 'admin'] },
    { name: 'delete (unknown run)', method: 'DELETE', path: '/v1/runs/not-there', allowed: ['admin'] },
    { name: 'backup', method: 'POST', path: '/v1/admin/backup', body: { dir: '' }, allowed: ['admin'] },
  ];

  for (const route of routes) {
    it.each(WHO)(`${route.name}: %s`, async (who) => {
      const token = tokenOf(who);
      const body = route.name === 'backup' ? { dir: join(dir.path, `bk-${who}`) } : route.body;
      const res = await fetch(`http://127.0.0.1:${daemon.httpPort}${route.path}`, {
        method: route.method,
        headers: {
          ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      // The clip page answers HTML when allowed; refusals are JSON everywhere.
      const isJson = res.headers.get('content-type')?.includes('application/json') === true;
      const json = (isJson ? await res.json() : {}) as { code?: string; runs?: Array<{ id: string }> };
      if (route.allowed.includes(who)) {
        // Allowed: anything but an auth refusal (the unknown run answers 404).
        expect([401, 403]).not.toContain(res.status);
        if (route.name === 'runs') expect(json.runs?.map((r) => r.id)).toEqual(who === 'otherRuns' ? [] : ['secure']);
      } else {
        expect(res.status).toBe(who === 'none' || who === 'wrong' ? 401 : 403);
        expect(json.code).toBe(who === 'none' || who === 'wrong' ? 'MOTIVE_API_UNAUTHENTICATED' : 'MOTIVE_API_FORBIDDEN');
      }
    });
  }

  it('accepts ?token= for browsers and WebSockets', async () => {
    const res = await fetch(`http://127.0.0.1:${daemon.httpPort}/v1/runs/secure?token=${TOKENS.viewer}`);
    expect(res.status).toBe(200);
  });

  it.each(WHO)('gRPC Attach to run "secure": %s', async (who) => {
    const allowed: Who[] = ['trainer', 'admin'];
    const s = rawStream(`127.0.0.1:${daemon.grpcPort}`);
    s.write(hello('secure', 4, { token: tokenOf(who) ?? '', projection: { kind: 'logra-gaussian', seed: 0, dim: 4, fingerprint: '' } }));
    const reply = (await s.next()) as DaemonReply;
    s.close();
    if (allowed.includes(who)) expect(reply.welcome).toBeDefined();
    else {
      const want = who === 'none' || who === 'wrong' ? 'MOTIVE_INGEST_UNAUTHENTICATED' : 'MOTIVE_INGEST_FORBIDDEN';
      expect(reply.error).toMatchObject({ code: want, fatal: true });
    }
  });

  it('never writes a token into the log', async () => {
    const lines: string[] = [];
    const d = await startTestDaemon({ logLevel: 'debug', auth: { trainerToken: 'very-secret-token-42' } });
    const orig = process.stdout.write.bind(process.stdout);
    process.stdout.write = (chunk: string | Uint8Array) => {
      lines.push(chunk.toString());
      return true;
    };
    try {
      const s = rawStream(`127.0.0.1:${d.grpcPort}`);
      s.write(hello('logged', 4, { token: 'wrong-secret-token-43' }));
      await s.next();
      s.write(hello('logged', 4, { token: 'very-secret-token-42' }));
      s.close();
      const ok = rawStream(`127.0.0.1:${d.grpcPort}`);
      ok.write(hello('logged', 4, { token: 'very-secret-token-42' }));
      await ok.next();
      ok.close();
    } finally {
      process.stdout.write = orig;
      await d.cleanup();
    }
    const all = lines.join('');
    expect(all).not.toContain('very-secret-token-42');
    expect(all).not.toContain('wrong-secret-token-43');
  });
});

describe('TLS', () => {
  it('serves gRPC and HTTPS with the configured key pair', async () => {
    const dir = tempDir();
    const key = join(dir.path, 'key.pem');
    const cert = join(dir.path, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
    const d = await startTestDaemon({ tls: { certFile: cert, keyFile: key } });
    const ca = readFileSync(cert);
    const c = new MotiveClient({ dtype: 'float32', address: `localhost:${d.grpcPort}`, runId: 'tls', dim: 2, tls: { ca } });
    await c.connect();
    await c.send(0, 1, ['x'], Float32Array.from([1, 2]));
    await c.flush();
    c.close();
    const body = await new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: d.httpPort, path: '/v1/runs/tls', ca, servername: 'localhost' }, (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.end();
    });
    expect(JSON.parse(body)).toMatchObject({ id: 'tls', batches: 1, samples: 1 });
    // A plaintext client is refused.
    const plain = await fetch(`http://127.0.0.1:${d.httpPort}/healthz`).then(
      (r) => r.status,
      () => 'refused',
    );
    expect(plain).not.toBe(200);
    await d.cleanup();
    dir.remove();
  });
});
