/**
 * `npm start` brings the daemon up on a data dir it creates; `motive status` and `motive top`
 * report it.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { MotiveClient } from '../../trainer-hooks/ts/index.js';
import { REPO_ROOT, spawnDaemon, tempDir, type ChildDaemon } from '../helpers/daemon.js';
import { runCli } from '../../daemon/cli/cli.js';

const run = promisify(execFile);

describe('npm start and the motive CLI', () => {
  const dir = tempDir();
  let daemon: ChildDaemon | undefined;
  afterAll(async () => {
    daemon?.proc.kill('SIGTERM');
    await daemon?.exited;
    dir.remove();
  });

  it('starts on a fresh data dir, reports status and the top clips', async () => {
    const dataDir = join(dir.path, 'nested', 'store');
    expect(existsSync(dataDir)).toBe(false);
    daemon = await spawnDaemon({ MOTIVE_DATA_DIR: dataDir, MOTIVE_GRPC_PORT: '0', MOTIVE_HTTP_PORT: '0' });
    expect(existsSync(join(dataDir, 'data.mdb'))).toBe(true);
    const url = `http://127.0.0.1:${daemon.httpPort}`;

    const c = new MotiveClient({ dtype: 'float32', address: `127.0.0.1:${daemon.grpcPort}`, runId: 'cli-run', dim: 4 });
    await c.connect();
    c.setQueries(1, 0, ['q'], Float32Array.from([1, 0, 0, 0]));
    await c.send(1, 0.1, ['good', 'bad'], Float32Array.from([1, 0, 0, 0, -1, 0, 0, 0]));
    await c.flush();
    c.close();

    const status = await run(process.execPath, ['bin/motive.js', 'status', '--url', url], { cwd: REPO_ROOT });
    expect(status.stdout).toMatch(/motived\/[\d.]+ at http:\/\/127\.0\.0\.1:\d+: ok, 1 run\(s\)/);
    expect(status.stdout).toMatch(/cli-run\s+0\s+2\s+1\s+2/);

    const top = await run(process.execPath, ['bin/motive.js', 'top', '--run', 'cli-run', '--url', url], { cwd: REPO_ROOT });
    const lines = top.stdout.trim().split('\n');
    expect(lines[0]).toContain('most harmful first');
    expect(lines[1]).toMatch(/^#\s+sample\s+score/);
    expect(lines[3]).toMatch(/^1\s+bad\s+-0\.1000/);
    expect(lines[4]).toMatch(/^2\s+good\s+0\.1000/);
  });

  it('explains what is wrong when the daemon is not there or the run is unknown', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (s: string) => out.push(s), err: (s: string) => err.push(s) };
    expect(await runCli(['status', '--url', 'http://127.0.0.1:9'], io)).toBe(1);
    expect(err.join('')).toMatch(/cannot reach the daemon at http:\/\/127\.0\.0\.1:9/);
    expect(await runCli(['top', '--run', 'nope', '--url', `http://127.0.0.1:${daemon!.httpPort}`], io)).toBe(1);
    expect(err.join('')).toMatch(/MOTIVE_API_RUN_NOT_FOUND/);
    expect(await runCli(['top'], io)).toBe(2);
    expect(await runCli(['frobnicate'], io)).toBe(2);
  });
});
