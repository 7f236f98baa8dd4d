/**
 * Hostile peers against authorisation: run-scoped tokens against every REST route, the WebSocket
 * feed and every metric series; injection in what the upgrade refusal echoes; tokens in error
 * bodies; unknown routes; the page's role (docs/security.md).
 */
import { existsSync, readdirSync, symlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MotiveClient } from '../../trainer-hooks/ts/index.js';
import { filterRunSeries, runLabel } from '../../daemon/metrics/route.js';
import { runCli } from '../../daemon/cli/cli.js';
import { startTestDaemon, tempDir } from '../helpers/daemon.js';

const TOKENS = {
  admin: 'tok-admin-all-0001',
  viewer: 'tok-viewer-all-001',
  adminA: 'tok-admin-runA-001',
  viewerA: 'tok-viewer-runA-01',
  trainer: 'tok-trainer-all-01',
};

/** The raw HTTP answer to a WebSocket upgrade request for `path`. */
function upgradeAnswer(port: number, path: string, token?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1', () => {
      sock.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` +
          (token === undefined ? '' : `Authorization: Bearer ${token}\r\n`) +
          '\r\n',
      );
    });
    let text = '';
    sock.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      // A 101 keeps the socket open: its headers are enough.
      if (text.startsWith('HTTP/1.1 101') && text.includes('\r\n\r\n')) sock.destroy();
    });
    sock.on('close', () => resolve(text));
    sock.on('error', reject);
    setTimeout(() => {
      sock.destroy();
      resolve(text);
    }, 5000);
  });
}

describe('run-scoped tokens against every route and metric', () => {
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  const dir = tempDir();
  let url: string;

  beforeAll(async () => {
    daemon = await startTestDaemon({
      auth: {
        tokens: [
          { name: 'admin', token: TOKENS.admin, role: 'admin', runs: null },
          { name: 'viewer', token: TOKENS.viewer, role: 'viewer', runs: null },
          { name: 'admin-a', token: TOKENS.adminA, role: 'admin', runs: ['runA'] },
          { name: 'viewer-a', token: TOKENS.viewerA, role: 'viewer', runs: ['runA'] },
          { name: 'trainer', token: TOKENS.trainer, role: 'trainer', runs: null },
        ],
      },
    });
    url = `http://127.0.0.1:${daemon.httpPort}`;
    for (const runId of ['runA', 'runB']) {
      const c = new MotiveClient({ dtype: 'float32', address: `127.0.0.1:${daemon.grpcPort}`, runId, dim: 2, token: TOKENS.trainer });
      await c.connect();
      c.setQueries(1, 0, ['q'], Float32Array.from([1, 0]));
      await c.send(0, 0.1, [`${runId}-s`], Float32Array.from([1, 0.5]));
      await c.flush();
      c.close();
    }
  });
  afterAll(async () => {
    await daemon.cleanup();
    dir.remove();
  });

  const call = async (method: string, path: string, token: string | undefined, body?: unknown) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: {
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, text: await res.text() };
  };

  // Every route the daemon serves, per run where it has one.
  const perRun = (run: string): Array<{ method: string; path: string; body?: unknown }> => [
    { method: 'GET', path: `/v1/runs/${run}` },
    { method: 'GET', path: `/v1/runs/${run}/samples` },
    { method: 'GET', path: `/v1/runs/${run}/samples/${run}-s` },
    { method: 'GET', path: `/v1/runs/${run}/weights` },
    { method: 'POST', path: `/v1/runs/${run}/attribute`, body: { sketch: [1, 0] } },
    { method: 'GET', path: `/v1/runs/${run}/explain` },
    { method: 'GET', path: `/v1/runs/${run}/export.arrow` },
    { method: 'GET', path: `/v1/runs/${run}/downweighted/recent` },
  ];
  const spanning = [
    { method: 'POST', path: '/v1/admin/backup', body: { dir: '' } },
    { method: 'POST', path: '/v1/profiles', body: { profiles: [] } },
    { method: 'POST', path: '/v1/profiles/lookup', body: { clips: [] } },
    { method: 'GET', path: '/v1/profiles/some-clip' },
    { method: 'POST', path: '/v1/profiles/previews', body: { previews: [] } },
  ];

  it.each(['adminA', 'viewerA'] as const)("%s: 403 on every route of another run, allowed on its own run's", async (who) => {
    for (const r of perRun('runB')) {
      const res = await call(r.method, r.path, TOKENS[who], r.body);
      expect(res.status, `${r.method} ${r.path}`).toBe(403);
      expect(JSON.parse(res.text)).toMatchObject({ code: 'MOTIVE_API_FORBIDDEN' });
    }
    for (const r of perRun('runA')) {
      const res = await call(r.method, r.path, TOKENS[who], r.body);
      expect(res.status, `${r.method} ${r.path}`).toBe(200);
    }
    // A preview of another run's sample is refused before anything is looked up; its own run's
    // sample has no profile, so no preview.
    const preview = (run: string) => call('GET', `/v1/runs/${run}/samples/${run}-s/preview?kind=anim`, TOKENS[who]);
    expect((await preview('runB')).status).toBe(403);
    expect(JSON.parse((await preview('runA')).text)).toMatchObject({ code: 'MOTIVE_API_PREVIEW_NOT_FOUND' });
    // DELETE is admin-only; the scoped admin may not delete runB.
    expect((await call('DELETE', '/v1/runs/runB', TOKENS[who])).status).toBe(403);
  });

  it.each(['adminA', 'viewerA'] as const)('%s: 403 on every route that spans runs (backup, profiles)', async (who) => {
    for (const r of spanning) {
      const body = r.path === '/v1/admin/backup' ? { dir: join(dir.path, `bk-${who}`) } : r.body;
      const res = await call(r.method, r.path, TOKENS[who], body);
      expect(res.status, `${r.method} ${r.path}`).toBe(403);
      expect(JSON.parse(res.text)).toMatchObject({ code: 'MOTIVE_API_FORBIDDEN' });
    }
  });

  it('an unscoped admin may back up and read profiles', async () => {
    expect((await call('POST', '/v1/admin/backup', TOKENS.admin, { dir: join(dir.path, 'bk-admin') })).status).toBe(200);
    expect((await call('POST', '/v1/profiles/lookup', TOKENS.admin, { clips: [] })).status).toBe(200);
  });

  it("refuses a backup into the data dir, a run's segment directory, or a link to them (REST and CLI)", async () => {
    const link = join(dir.path, 'link-to-data');
    symlinkSync(daemon.dataDir, link);
    const segmentDir = readdirSync(join(daemon.dataDir, 'records'))[0]!;
    for (const target of [
      daemon.dataDir,
      join(daemon.dataDir, 'records', segmentDir),
      join(daemon.dataDir, 'new', 'sub'),
      join(link, 'bk'),
    ]) {
      const res = await call('POST', '/v1/admin/backup', TOKENS.admin, { dir: target });
      expect(res.status, target).toBe(400);
      expect(JSON.parse(res.text), target).toMatchObject({ code: 'MOTIVE_API_BACKUP_TARGET' });
    }
    expect(existsSync(join(daemon.dataDir, 'new'))).toBe(false);
    let err = '';
    const code = await runCli(
      ['backup', '--out', join(daemon.dataDir, 'records', segmentDir)],
      { out: () => undefined, err: (t) => (err += t) },
      {
        MOTIVE_URL: url,
        MOTIVE_TOKEN: TOKENS.admin,
      },
    );
    expect(code).toBe(1);
    expect(err).toMatch(/MOTIVE_API_BACKUP_TARGET: .*inside the data directory/);
  });

  it('/v1/runs, /metrics and the page show a scoped token only its runs', async () => {
    const runs = JSON.parse((await call('GET', '/v1/runs', TOKENS.viewerA)).text) as { runs: Array<{ id: string }> };
    expect(runs.runs.map((r) => r.id)).toEqual(['runA']);

    const all = (await call('GET', '/metrics', TOKENS.viewer)).text;
    const scoped = await call('GET', '/metrics', TOKENS.viewerA);
    expect(scoped.status).toBe(200);
    const runsIn = (text: string) => new Set(text.split('\n').flatMap((l) => (runLabel(l) === undefined ? [] : [runLabel(l)])));
    expect(runsIn(all)).toEqual(new Set(['runA', 'runB']));
    expect(runsIn(scoped.text)).toEqual(new Set(['runA']));
    expect(scoped.text).not.toContain('runB');
    // Every motive series of runA, and every one without a run, is still there (process series
    // come and go between scrapes).
    const keep = all.split('\n').filter((l) => l.startsWith('motive_') && !l.includes('run="runB"'));
    const gotLines = new Set(scoped.text.split('\n').map((l) => l.replace(/ [^ ]+$/, '')));
    expect(keep.length).toBeGreaterThan(20);
    for (const l of keep) expect(gotLines.has(l.replace(/ [^ ]+$/, '')), l).toBe(true);

    expect((await call('GET', '/', TOKENS.viewerA)).status).toBe(200);
  });

  it('the WebSocket feed refuses another run to a scoped token', async () => {
    expect(await upgradeAnswer(daemon.httpPort, '/v1/runs/runB/live', TOKENS.viewerA)).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    expect(await upgradeAnswer(daemon.httpPort, '/v1/runs/runA/live', TOKENS.viewerA)).toMatch(/^HTTP\/1\.1 101 /);
  });

  it('authenticates a WebSocket upgrade before reading it, and never echoes it into the status line or headers', async () => {
    const path = '/v1/runs/x/live?types=a%0d%0aSet-Cookie:%20injected=1';
    const anon = await upgradeAnswer(daemon.httpPort, path);
    expect(anon).toMatch(/^HTTP\/1\.1 401 Unauthorized\r\n/);
    expect(anon).not.toContain('injected');
    const known = await upgradeAnswer(daemon.httpPort, path, TOKENS.viewer);
    expect(known).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    const [head, body] = known.split('\r\n\r\n') as [string, string];
    expect(head).not.toMatch(/set-cookie|injected/i);
    // The body names the bad type, JSON-escaped.
    expect(JSON.parse(body)).toMatchObject({ code: 'MOTIVE_API_BAD_REQUEST', message: expect.stringContaining('\\r\\nSet-Cookie') });
  });

  it('the page needs the viewer role; ?token= opens it', async () => {
    expect((await call('GET', '/', undefined)).status).toBe(401);
    const res = await fetch(`${url}/?token=${TOKENS.viewer}`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('<html');
  });

  it('unknown routes answer {code, message}; error bodies never echo a ?token=', async () => {
    const unknown = await fetch(`${url}/v1/nothing-here?token=${TOKENS.admin}`);
    expect(unknown.status).toBe(404);
    const body = (await unknown.json()) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(['code', 'message']);
    expect(body.code).toBe('MOTIVE_API_NOT_FOUND');
    expect(JSON.stringify(body)).not.toContain(TOKENS.admin);
    for (const path of [`/v1/runs/%zz?token=${TOKENS.admin}`, `/v1/runs/runA/samples?limit=zero&token=${TOKENS.admin}`]) {
      const res = await fetch(`${url}${path}`);
      expect(res.status, path).toBe(400);
      const text = await res.text();
      expect(JSON.parse(text)).toHaveProperty('code');
      expect(text, path).not.toContain(TOKENS.admin);
    }
  });
});

describe('metric series filter', () => {
  it('reads the run label through escapes and other labels', () => {
    expect(runLabel('motive_x{run="a"} 1')).toBe('a');
    expect(runLabel('motive_x{code="run=\\"b\\"",run="c"} 1')).toBe('c');
    expect(runLabel('motive_x{event="attach",run="d\\\\e"} 2')).toBe('d\\e');
    expect(runLabel('motive_x 3')).toBeUndefined();
    expect(runLabel('# HELP motive_x run="z"')).toBeUndefined();
    const text = ['# TYPE m gauge', 'm{run="a"} 1', 'm{run="b"} 2', 'm{code="run=\\"b\\""} 3', 'g 4'].join('\n');
    expect(filterRunSeries(text, ['a']).split('\n')).toEqual(['# TYPE m gauge', 'm{run="a"} 1', 'm{code="run=\\"b\\""} 3', 'g 4']);
  });
});
