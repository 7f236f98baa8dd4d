import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadConfig } from '../../config/index.js';
import { startDaemon, type RunningDaemon } from '../../daemon.js';
import { createLogger } from '../../shared/index.js';
import { UsageError, defaultIo, formatNumber, table, type Command, type Io } from '../common.js';
import { readRecordedRun, replayRecordedRun } from '../recorded-run.js';
import { streamSyntheticRun } from '../synthetic-run.js';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The recorded run of the synthetic-motion experiment, when it has been produced. */
export const RECORDED_RUN_PATH = join(REPO_ROOT, 'examples/synthetic-motion/recorded-run.arrow');
const PYTHON_EXAMPLE = join(REPO_ROOT, 'trainer-hooks/python/examples/minimal.py');

/** Where the demo's run comes from, best first. */
export type DemoSource = 'recorded' | 'python' | 'synthetic';

/** The best source available here: the recorded run, else a live PyTorch run, else synthetic. */
export function pickDemoSource(env: NodeJS.ProcessEnv): { source: DemoSource; why: string } {
  if (existsSync(RECORDED_RUN_PATH)) return { source: 'recorded', why: `replaying ${RECORDED_RUN_PATH}` };
  const python = env['PYTHON'] ?? 'python3';
  const probe = spawnSync(python, ['-c', 'import torch, grpc, numpy'], { stdio: 'ignore', timeout: 30_000 });
  if (probe.status === 0 && existsSync(PYTHON_EXAMPLE))
    return { source: 'python', why: `a live run of the tiny PyTorch model (${PYTHON_EXAMPLE})` };
  return {
    source: 'synthetic',
    why:
      'SYNTHETIC stream: no recorded run (examples/synthetic-motion/recorded-run.arrow) and no PyTorch here ' +
      '(Debian: python3-torch python3-grpcio python3-numpy), so seeded sketches with planted harmful clips are streamed ' +
      'through the TypeScript client; no model is trained',
  };
}

class Progress {
  private readonly io: Io;
  private readonly tty: boolean;
  private lastPrintMs = 0;

  constructor(io: Io, tty: boolean) {
    this.io = io;
    this.tty = tty;
  }

  /** A status line: rewritten in place on a terminal, else printed at most every 2 s (`force`: now). */
  update(line: string, force = false): void {
    const now = Date.now();
    if (this.tty) {
      if (!force && now - this.lastPrintMs < 100) return;
      this.lastPrintMs = now;
      this.io.out(`\r\x1b[2K${line}`);
    } else if (force || now - this.lastPrintMs >= 2000) {
      this.lastPrintMs = now;
      this.io.out(`${line}\n`);
    }
  }

  done(): void {
    if (this.tty) this.io.out('\n');
  }
}

function statusLine(d: RunningDaemon, runId: string, startedMs: number): string {
  const run = d.store.run(runId);
  if (run === undefined) return 'waiting for the trainer…';
  let down = 0;
  for (const s of run.samples.values()) if (s.weight < 1) down++;
  const secs = (Date.now() - startedMs) / 1000;
  return `step ${run.lastStep}  batches ${run.batches}  sketches ${run.sketches} (${formatNumber(Math.round(run.sketches / Math.max(secs, 0.001)))}/s)  samples ${run.samples.size}  down-weighted ${down}  weights v${run.weightsVersion}`;
}

async function runPython(
  address: string,
  runId: string,
  steps: number,
  io: Io,
  env: NodeJS.ProcessEnv,
  signal: AbortSignal,
): Promise<void> {
  const child = spawn(env['PYTHON'] ?? 'python3', [PYTHON_EXAMPLE, '--address', address, '--run', runId, '--steps', String(steps)], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const onAbort = (): void => {
    child.kill('SIGTERM');
  };
  signal.addEventListener('abort', onAbort);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  // The example prints its loss per step; the status line shows the daemon's side instead.
  createInterface({ input: child.stdout }).on('line', () => undefined);
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  signal.removeEventListener('abort', onAbort);
  if (code !== 0 && !signal.aborted) {
    io.err(stderr);
    throw new Error(`the PyTorch example exited with ${String(code)}`);
  }
}

/** Starts the demo's daemon on `dataDir`, at `httpPort` or, when that is taken, any free port. */
async function startDemoDaemon(dataDir: string, httpPort: number): Promise<RunningDaemon> {
  const startWith = async (port: number): Promise<RunningDaemon> => {
    const config = loadConfig({
      env: {},
      overrides: { dataDir, logLevel: 'warn', grpc: { port: 0 }, http: { port }, weights: { intervalMs: 250, minSeen: 2 } },
    });
    return startDaemon(config, createLogger('warn'));
  };
  try {
    return await startWith(httpPort);
  } catch (err) {
    // The default port is often taken by a daemon already running: any free port will do.
    if ((err as { code?: string }).code !== 'EADDRINUSE' || httpPort === 0) throw err;
    return startWith(0);
  }
}

/** Prints the run's ten most harmful clips, as the daemon ranks them. */
async function printTopHarmful(httpPort: number, runId: string, synthetic: boolean, io: Io): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${httpPort}/v1/runs/${encodeURIComponent(runId)}/samples?order=harmful&limit=10`);
  const { samples } = (await res.json()) as {
    samples: Array<{ id: string; score: number; votes: number; weight: number; seen: number }>;
  };
  io.out(`\nmost harmful clips of ${runId}${synthetic ? ' (synthetic stream)' : ''}:\n`);
  io.out(
    table(
      ['#', 'clip', 'score', 'votes', 'weight', 'seen'],
      samples.map((s, i) => [i + 1, s.id, s.score, s.votes, s.weight, s.seen]),
    ),
  );
}

export const demoCommand: Command = {
  usage: `demo [--source recorded|python|synthetic] [--steps N] [--http-port P] [--hold]
                                     a daemon on a temp store fed a run; prints the page URL and the top harmful clips`,
  run: async (args, io, env) => {
    const { values } = parseArgs({
      args,
      options: {
        source: { type: 'string' },
        steps: { type: 'string' },
        'http-port': { type: 'string', default: '8080' },
        hold: { type: 'boolean' },
        speed: { type: 'string', default: '4' },
      },
    });
    const steps = values.steps === undefined ? undefined : Number(values.steps);
    if (steps !== undefined && !(Number.isInteger(steps) && steps > 0)) throw new UsageError('--steps takes a positive integer');
    const httpPort = Number(values['http-port']);
    if (!(Number.isInteger(httpPort) && httpPort >= 0 && httpPort < 65536)) throw new UsageError('--http-port takes a port number');
    const speed = Number(values.speed);
    if (!(speed >= 0)) throw new UsageError('--speed takes a number >= 0 (0 = as fast as possible)');
    let picked: { source: DemoSource; why: string };
    if (values.source === undefined) picked = pickDemoSource(env);
    else if (values.source === 'recorded' || values.source === 'python' || values.source === 'synthetic') {
      picked = {
        source: values.source,
        why: values.source === 'synthetic' ? 'SYNTHETIC stream (asked for): seeded sketches, no model' : `asked for: ${values.source}`,
      };
    } else throw new UsageError('--source is recorded, python or synthetic');

    const dataDir = mkdtempSync(join(tmpdir(), 'motive-demo-'));
    const daemon = await startDemoDaemon(dataDir, httpPort);
    const runId = `demo-${picked.source}`;
    const stop = new AbortController();
    const onSigint = (): void => stop.abort();
    process.on('SIGINT', onSigint);
    const pageUrl = `http://127.0.0.1:${daemon.httpPort}/?run=${runId}`;
    io.out(`motive demo: daemon on a temp store (${dataDir})\n`);
    io.out(`  source: ${picked.why}\n`);
    io.out(`  live page: ${pageUrl}\n`);
    io.out(`  also: motive watch --run ${runId} --url http://127.0.0.1:${daemon.httpPort}   ·   /metrics for Prometheus\n\n`);
    const progress = new Progress(io, process.stdout.isTTY && io === defaultIo);
    const startedMs = Date.now();
    const ticker = setInterval(() => progress.update(statusLine(daemon, runId, startedMs)), 250);
    const address = `127.0.0.1:${daemon.grpcPort}`;
    try {
      if (picked.source === 'recorded') {
        const messages = readRecordedRun(RECORDED_RUN_PATH);
        await replayRecordedRun(messages, { address, runId, speed, signal: stop.signal });
      } else if (picked.source === 'python') {
        await runPython(address, runId, steps ?? 200, io, env, stop.signal);
      } else {
        await streamSyntheticRun({ address, runId, steps: steps ?? 600, stepDelayMs: 15, queryRefreshEvery: 200, signal: stop.signal });
      }
      await daemon.weighting.flushAll();
      clearInterval(ticker);
      progress.update(statusLine(daemon, runId, startedMs), true);
      progress.done();
      await printTopHarmful(daemon.httpPort, runId, picked.source === 'synthetic', io);
      if (values.hold === true && !stop.signal.aborted) {
        io.out(`\nstill serving ${pageUrl} — Ctrl-C to stop\n`);
        await new Promise<void>((r) => stop.signal.addEventListener('abort', () => r()));
      }
      return 0;
    } finally {
      clearInterval(ticker);
      process.off('SIGINT', onSigint);
      await daemon.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  },
};
