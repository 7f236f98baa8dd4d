/** Starting real daemons for tests: in-process, or as a child process that can be SIGKILLed. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { loadConfig } from '../../daemon/config/index.js';
import { startDaemon, type RunningDaemon } from '../../daemon/daemon.js';
import { createLogger } from '../../daemon/shared/index.js';

export const REPO_ROOT = new URL('../../', import.meta.url).pathname;

export function tempDir(prefix = 'motive-test-'): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Starts a daemon in this process on 127.0.0.1 ephemeral ports with a temp store. */
export async function startTestDaemon(
  overrides: Record<string, unknown> = {},
  dataDir?: string,
): Promise<RunningDaemon & { dataDir: string; cleanup: () => Promise<void> }> {
  const dir = dataDir ?? tempDir().path;
  const config = loadConfig({
    env: {},
    overrides: { dataDir: dir, logLevel: 'error', grpc: { port: 0 }, http: { port: 0 }, ...overrides },
  });
  const d = await startDaemon(config, createLogger('error'));
  return {
    ...d,
    dataDir: dir,
    cleanup: async () => {
      await d.stop();
      if (dataDir === undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A free TCP port on 127.0.0.1 (for daemons that must come back on the same port). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export interface ChildDaemon {
  readonly proc: ChildProcess;
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly exited: Promise<number | null>;
}

/** The error of a daemon that died before it was ready: `signal` names what killed it, if anything did. */
export class DaemonStartError extends Error {
  readonly signal: NodeJS.Signals | null;
  constructor(message: string, signal: NodeJS.Signals | null) {
    super(message);
    this.signal = signal;
  }
}

/**
 * Spawns `node bin/motived.js` (or `entry`, or under vitest the run's bundle of the same daemon from
 * `TEST_DAEMON_BUNDLE`: test/helpers/global-setup.ts) and waits for its ready line (`readyTimeoutMs`, default 30 s; past
 * it the child is killed, so it cannot hold the ports or the store of a later start). With
 * `fileLimitKiB` it runs under `ulimit -f` with SIGXFSZ ignored (the disposition survives exec):
 * a disk that fills up.
 */
export function spawnDaemon(
  env: Record<string, string>,
  options: { fileLimitKiB?: number; readyTimeoutMs?: number; entry?: string } = {},
): Promise<ChildDaemon> {
  const limit = options.fileLimitKiB;
  const entry = options.entry ?? process.env.TEST_DAEMON_BUNDLE ?? 'bin/motived.js';
  const [command, args] =
    limit === undefined
      ? [process.execPath, [entry]]
      : ['bash', ['-c', `trap '' XFSZ; ulimit -f ${Math.max(1, Math.floor(limit))}; exec "$0" "$1"`, process.execPath, entry]];
  const proc = spawn(command, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, MOTIVE_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let exitSignal: NodeJS.Signals | null = null;
  const exited = new Promise<number | null>((r) =>
    proc.once('exit', (code, signal) => {
      exitSignal = signal;
      r(code);
    }),
  );
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const readyMs = options.readyTimeoutMs ?? 30_000;
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new DaemonStartError(`daemon did not start in ${readyMs / 1000} s: ${stderr}`, null));
    }, readyMs);
    const lines = createInterface({ input: proc.stdout });
    lines.on('line', (line) => {
      try {
        const msg = JSON.parse(line) as { msg?: string; grpcPort?: number; httpPort?: number };
        if (msg.msg === 'ready') {
          clearTimeout(timer);
          resolve({ proc, grpcPort: msg.grpcPort!, httpPort: msg.httpPort!, exited });
        }
      } catch {
        // not a log line
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new DaemonStartError(`daemon exited (${code ?? exitSignal}) before ready: ${stderr}`, exitSignal));
    });
  });
}
