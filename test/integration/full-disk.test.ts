/**
 * A full disk for real: the child daemon's data dir on a small tmpfs (mounted here, which needs
 * root; elsewhere the test is skipped with a message, and `fault-injection.test.ts` covers the
 * same path with RLIMIT_FSIZE). The trainer must get a fatal MOTIVE_STORE_FULL naming the cause,
 * the daemon must log no unhandled rejection and keep serving reads, and everything acknowledged
 * must be there after a restart with room. And a read-only data directory (the tmpfs remounted
 * read-only) is refused at start with MOTIVE_STORE_READONLY.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../../daemon/cli/cli.js';
import { Store } from '../../daemon/store/index.js';
import { freePort, spawnDaemon, tempDir, type ChildDaemon } from '../helpers/daemon.js';
import { batch, hello, rawStream } from '../helpers/raw-stream.js';

const K = 1024;
const N = 16;

function tryMount(dir: string, size: string): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const base = tempDir('motive-enospc-');
const mountDir = join(base.path, 'mnt');
mkdirSync(mountDir);
const mounted = process.getuid?.() === 0 && tryMount(mountDir, '3m');
if (!mounted)
  console.warn(
    'full-disk.test.ts: skipped: mounting a small tmpfs needs root (fault-injection.test.ts covers a full disk with RLIMIT_FSIZE)',
  );

/** Daemons to SIGKILL before unmounting (a failed assertion leaves one running). */
const running: ChildDaemon[] = [];
function stopLater(d: ChildDaemon): void {
  running.push(d);
}

describe.skipIf(!mounted)('full disk (ENOSPC on a 3 MiB tmpfs)', () => {
  afterAll(async () => {
    for (const d of running) {
      d.proc.kill('SIGKILL');
      await d.exited;
    }
    if (mounted) execFileSync('umount', [mountDir]);
    base.remove();
  });

  it('answers a fatal MOTIVE_STORE_FULL naming ENOSPC, logs no unhandled rejection, keeps every acknowledged batch', async () => {
    const dataDir = join(mountDir, 'data');
    const env = {
      MOTIVE_DATA_DIR: dataDir,
      MOTIVE_GRPC_PORT: String(await freePort()),
      MOTIVE_HTTP_PORT: String(await freePort()),
    };
    const daemon = await spawnDaemon(env);
    stopLater(daemon);
    let log = '';
    daemon.proc.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    daemon.proc.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    const s = rawStream(`127.0.0.1:${daemon.grpcPort}`);
    s.write(hello('full', K));
    expect(await s.next()).toHaveProperty('welcome');
    let lastAck = 0;
    let error: { code: string; message: string; fatal: boolean } | undefined;
    for (let seq = 1; seq <= 400 && error === undefined; seq++) {
      const ids = Array.from({ length: N }, (_, i) => `b${seq}-${i}`);
      s.write(
        batch(
          seq,
          ids,
          Float32Array.from({ length: N * K }, (_, i) => Math.sin(seq * 131 + i)),
          seq,
        ),
      );
      const m = await s.next(20_000);
      if (m === 'end') break;
      if (m.ack) lastAck = m.ack.seq;
      if (m.error) error = m.error;
    }
    s.close();
    expect(error, `acked ${lastAck}, then no Error`).toBeDefined();
    expect(error?.code, error?.message).toBe('MOTIVE_STORE_FULL');
    expect(error?.message).toMatch(/ENOSPC|no space/i);
    expect(error?.fatal).toBe(true);
    const res = await fetch(`http://127.0.0.1:${daemon.httpPort}/v1/runs/full`);
    expect(res.status).toBe(200);
    await new Promise((r) => setTimeout(r, 500));
    daemon.proc.kill('SIGKILL');
    await daemon.exited;
    expect(log.split('\n').filter((l) => l.includes('unhandled rejection'))).toEqual([]);

    // Room again: a bigger copy of the store; every acknowledged batch is there.
    const roomy = join(base.path, 'roomy');
    execFileSync('cp', ['-a', dataDir, roomy]);
    rmSync(dataDir, { recursive: true, force: true });
    const again = await spawnDaemon({ ...env, MOTIVE_DATA_DIR: roomy });
    stopLater(again);
    try {
      const run = (await (await fetch(`http://127.0.0.1:${again.httpPort}/v1/runs/full`)).json()) as { batches: number; samples: number };
      expect(run.batches).toBe(lastAck);
      expect(run.samples).toBe(lastAck * N);
    } finally {
      again.proc.kill('SIGKILL');
      await again.exited;
    }
  }, 120_000);

  it('refuses a read-only data directory at start with MOTIVE_STORE_READONLY, store, restore and daemon alike', async () => {
    const roDir = join(base.path, 'ro');
    mkdirSync(roDir);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', roDir]);
    try {
      const store = await Store.open({ dataDir: join(roDir, 'data'), mapSizeBytes: 1 << 30 });
      await store.close();
      execFileSync('mount', ['-o', 'remount,ro', roDir]);
      for (const dataDir of [join(roDir, 'data'), join(roDir, 'new')]) {
        const err = await Store.open({ dataDir, mapSizeBytes: 1 << 30 }).then(
          async (s) => {
            await s.close();
            return undefined;
          },
          (e: unknown) => e as { code?: string; message: string },
        );
        expect(err?.code, err?.message).toBe('MOTIVE_STORE_READONLY');
      }
      const to = join(roDir, 'restored');
      let out = '';
      const io = { out: (t: string) => void (out += t), err: (t: string) => void (out += t) };
      const backup = join(base.path, 'backup');
      execFileSync('cp', ['-a', join(roDir, 'data'), backup]);
      expect(await runCli(['restore', '--from', backup, '--data-dir', to], io, {})).toBe(1);
      const env = {
        MOTIVE_DATA_DIR: join(roDir, 'data'),
        MOTIVE_GRPC_PORT: String(await freePort()),
        MOTIVE_HTTP_PORT: String(await freePort()),
      };
      const started = await spawnDaemon(env).then(
        (d) => {
          stopLater(d);
          return 'started';
        },
        (e: unknown) => (e as Error).message,
      );
      expect(started).toContain('MOTIVE_STORE_READONLY');
    } finally {
      execFileSync('umount', [roDir]);
    }
  }, 60_000);
});
