/**
 * The crash harness's fault injection (fault-harness.ts): a child daemon on a fixed data dir and
 * fixed ports that is SIGKILLed from outside or by itself at an armed crash point
 * (`MOTIVE_CRASH_AT`, daemon/shared/crash-point.ts), with a file-size limit for a full disk, and
 * restarted on the same store.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CrashPoint } from '../../daemon/shared/crash-point.js';
import { freePort, spawnDaemon, tempDir, type ChildDaemon } from './daemon.js';
import { phaseOf } from './fault-plan.js';

/** A child daemon that keeps its data dir and ports across SIGKILLs and restarts. */
export class CrashableDaemon {
  readonly dataDir: string;
  readonly grpcPort: number;
  readonly httpPort: number;
  private readonly configDir: { path: string; remove: () => void };
  private readonly data: { path: string; remove: () => void };
  private child: ChildDaemon | undefined;
  /** What `node` runs: bin/motived.js, or a bundle of the same daemon (test/helpers/daemon-bundle.ts). */
  readonly entry: string | undefined;
  starts = 0;
  /** How long each start took to the ready line, recovery included (ms). */
  readonly startMs: number[] = [];
  /** store.commitDelayMs of the running daemon. */
  commitDelayMs = 0;
  /** The crash point the running daemon was started with, if any. */
  armed: CrashPoint | undefined;

  private constructor(grpcPort: number, httpPort: number, entry: string | undefined) {
    this.entry = entry;
    this.data = tempDir('motive-fault-data-');
    this.configDir = tempDir('motive-fault-cfg-');
    this.dataDir = this.data.path;
    this.grpcPort = grpcPort;
    this.httpPort = httpPort;
  }

  /** `entry`: the daemon's entry file for `node` (default bin/motived.js, through tsx's loader). */
  static async create(options: { entry?: string } = {}): Promise<CrashableDaemon> {
    return new CrashableDaemon(await freePort(), await freePort(), options.entry);
  }

  get proc(): ChildDaemon | undefined {
    return this.child;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  get address(): string {
    return `127.0.0.1:${this.grpcPort}`;
  }

  /**
   * Starts the daemon with weights on ({minSeen 1, intervalMs 50, maxRecomputeShare 1}) and the given extra config.
   * `fileLimitKiB` caps the size of every file it writes (RLIMIT_FSIZE, SIGXFSZ ignored), which
   * is how a full disk is simulated: the store's write fails once its file would grow past it.
   * `crashAt` (a {@link KillPlan}'s point and n) arms a crash point; a point of the flusher or of
   * compaction gets the smallest flush interval and segments, where those phases run most.
   */
  async start(
    commitDelayMs = 0,
    config: Record<string, unknown> = {},
    fileLimitKiB?: number,
    crashAt?: { point: CrashPoint; n: number },
  ): Promise<void> {
    const file = join(this.configDir.path, `config-${this.starts}.json`);
    // The flusher's settings cycle with each start, so kills land before, during and between
    // flushes and log trims, with and without ingest waiting for the flusher; commits alternate
    // between LMDB's write thread and synchronous ones.
    const busyStore = crashAt !== undefined && (phaseOf(crashAt.point) === 'flush' || phaseOf(crashAt.point) === 'compaction');
    const v = busyStore ? 0 : this.starts % 3;
    const store = {
      commitDelayMs,
      flushIntervalMs: [5, 50, 1000][v],
      flushChunkSamples: [16, 128, 4096][v],
      maxDirtySamples: [64, 1024, 65536][v],
      // Small segments: compaction runs (and is killed) too. Under a file-size limit (a full
      // disk) segments must not roll over below it, or the next one would start afresh.
      segmentBytes: fileLimitKiB === undefined ? [16384, 262144, 64 * 1024 ** 2][v] : 1024 ** 3,
      syncCommits: this.starts % 2 === 1,
    };
    // maxRecomputeShare 1: a recompute follows every change within intervalMs (not stretched by a
    // loaded machine's slow recomputes), so the weights settle soon after the last batch.
    const weights = { minSeen: 1, intervalMs: 50, maxRecomputeShare: 1 };
    writeFileSync(file, JSON.stringify({ weights, store, ...config }));
    this.commitDelayMs = commitDelayMs;
    this.starts++;
    const env: Record<string, string> = {
      MOTIVE_CONFIG: file,
      MOTIVE_DATA_DIR: this.dataDir,
      MOTIVE_GRPC_PORT: String(this.grpcPort),
      MOTIVE_HTTP_PORT: String(this.httpPort),
    };
    if (crashAt !== undefined) env.MOTIVE_CRASH_AT = `${crashAt.point}:${crashAt.n}`;
    this.armed = crashAt?.point;
    // A restart recovers every earlier trial's run: on a loaded machine that can take a while.
    const t0 = Date.now();
    this.child = await spawnDaemon(env, {
      readyTimeoutMs: 180_000,
      ...(fileLimitKiB === undefined ? {} : { fileLimitKiB }),
      ...(this.entry === undefined ? {} : { entry: this.entry }),
    });
    this.startMs.push(Date.now() - t0);
  }

  /** Sends `signal` and waits for the process to exit; resolves with its exit code. */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    const c = this.child;
    if (c === undefined) return null;
    c.proc.kill(signal);
    const code = await c.exited;
    this.child = undefined;
    return code;
  }

  async dispose(): Promise<void> {
    await this.stop('SIGKILL');
    this.data.remove();
    this.configDir.remove();
  }
}
