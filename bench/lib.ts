/** Shared pieces of the benchmarks: machine description, result files, tables, a child daemon, profiles. */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { table } from '../daemon/cli/common.js';
import type { rawStream } from '../test/helpers/raw-stream.js';

export const REPO_ROOT = new URL('../', import.meta.url).pathname;
/** Filled stores, dumped matrices and profiles live here (gitignored). */
export const CACHE_DIR = join(REPO_ROOT, 'bench/.cache');

export interface MachineInfo {
  cpu: string;
  cores: number;
  memGiB: number;
  node: string;
  /** 1-minute load average when the bench started: the machine is shared, so this says how busy it was. */
  load1: number;
}

export function machine(): MachineInfo {
  const c = cpus();
  return {
    cpu: c[0]?.model ?? 'unknown',
    cores: c.length,
    memGiB: Math.round(totalmem() / 1024 ** 3),
    node: process.version,
    load1: Number((loadavg()[0] ?? 0).toFixed(2)),
  };
}

/** Prints a titled table and writes `bench/results/<name>.json` with the machine and rows. */
export function report(
  name: string,
  title: string,
  headers: string[],
  rows: Array<Array<string | number>>,
  extra: Record<string, unknown> = {},
): void {
  const m = machine();
  process.stdout.write(
    `\n${title}\nmachine: ${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB, node ${m.node}, load ${m.load1}\n\n${table(headers, rows)}`,
  );
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  const records = rows.map((r) => Object.fromEntries(headers.map((h, i) => [h, r[i]])));
  writeFileSync(
    new URL(`./results/${name}.json`, import.meta.url),
    `${JSON.stringify({ name, title, machine: m, at: new Date().toISOString(), rows: records, ...extra }, null, 2)}\n`,
  );
}

export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (pos - lo);
}

/** Best (largest or smallest), and the spread as (worst − best) / best, of repeated measurements. */
export function bestOf(values: number[], better: 'higher' | 'lower'): { best: number; worst: number; spreadPct: number } {
  const best = better === 'higher' ? Math.max(...values) : Math.min(...values);
  const worst = better === 'higher' ? Math.min(...values) : Math.max(...values);
  return { best, worst, spreadPct: best === 0 ? 0 : (Math.abs(worst - best) / best) * 100 };
}

export function fmt(x: number, digits = 1): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '–';
}

export interface BenchDaemon {
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly startMs: number;
  /** SIGTERM and wait for the graceful exit (which also writes a CPU profile when one was asked for). */
  stop(): Promise<void>;
}

export interface BenchDaemonOptions {
  readonly dataDir: string;
  /** Extra `MOTIVE_*` env. */
  readonly env?: Record<string, string>;
  /** Write a V8 CPU profile of the daemon into this directory (node --cpu-prof). */
  readonly cpuProfDir?: string;
  readonly startTimeoutMs?: number;
  /**
   * Checkout whose `bin/motived.js` runs (default this one): another worktree, e.g. an older
   * commit's, to compare daemons under the same benchmark.
   */
  readonly root?: string;
}

/** Spawns `node bin/motived.js` on ephemeral ports and waits for its ready line. */
export function startBenchDaemon(options: BenchDaemonOptions): Promise<BenchDaemon> {
  const args = options.cpuProfDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', options.cpuProfDir];
  const started = performance.now();
  const proc = spawn(process.execPath, [...args, 'bin/motived.js'], {
    cwd: options.root ?? REPO_ROOT,
    env: {
      ...process.env,
      MOTIVE_DATA_DIR: options.dataDir,
      MOTIVE_GRPC_PORT: '0',
      MOTIVE_HTTP_PORT: '0',
      MOTIVE_LOG_LEVEL: 'warn',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<string>((r) => proc.once('exit', (code, signal) => r(signal ?? String(code))));
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const timeoutMs = options.startTimeoutMs ?? 120_000;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`daemon did not start in ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    const lines = createInterface({ input: proc.stdout });
    lines.on('line', (line) => {
      try {
        const msg = JSON.parse(line) as { msg?: string; grpcPort?: number; httpPort?: number };
        if (msg.msg !== 'ready') return;
        clearTimeout(timer);
        resolve({
          proc,
          pid: proc.pid!,
          grpcPort: msg.grpcPort!,
          httpPort: msg.httpPort!,
          startMs: performance.now() - started,
          stop: async () => {
            proc.kill('SIGTERM');
            const t = setTimeout(() => proc.kill('SIGKILL'), 60_000);
            await exited;
            clearTimeout(t);
          },
        });
      } catch {
        // not a log line
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited (${code}) before ready: ${stderr}`));
    });
  });
}

/**
 * Resident memory of a process in MiB, from /proc/<pid>/status: VmRSS, its anonymous part (heap,
 * the process's own memory) and its file-backed part (pages of the LMDB memory map the process has
 * touched: page cache, shared and evictable), and the peak VmHWM.
 */
export function rssMiB(pid: number): { rss: number; anon: number; file: number; peak: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { rss: kib('VmRSS') / 1024, anon: kib('RssAnon') / 1024, file: kib('RssFile') / 1024, peak: kib('VmHWM') / 1024 };
}

/**
 * CPU time (user + system) a process has used so far, in ms, from /proc/<pid>/stat; with `tid`,
 * that one thread's (`tid` = `pid` is the process's main thread, where its JavaScript runs).
 */
export function cpuMs(pid: number, tid?: number): number {
  const stat = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start at the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / 100;
}

/** POSTs JSON to the daemon's HTTP port and returns the parsed answer. */
/**
 * The bench daemon's Prometheus metrics `names`, each summed over its label sets (NaN when absent).
 */
export async function scrapeMetric(d: BenchDaemon, ...names: string[]): Promise<number[]> {
  const text = await (await fetch(`http://127.0.0.1:${d.httpPort}/metrics`)).text();
  return names.map((name) => {
    let total = NaN;
    for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm')))
      total = (Number.isNaN(total) ? 0 : total) + Number(m[1]);
    return total;
  });
}

export async function postJson<T>(port: number, path: string, body: unknown): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

export interface ProfileEntry {
  fn: string;
  where: string;
  selfMs: number;
  selfPct: number;
}

/** A span of CLOCK_MONOTONIC in µs (`process.hrtime.bigint() / 1000n`), the clock of V8's profile timestamps on Linux. */
export interface ProfileSpan {
  fromUs: number;
  toUs: number;
}

/**
 * Top self-time functions of the newest `.cpuprofile` in `dir` (node --cpu-prof), idle and GC
 * shown as their own entries so the share of time spent waiting is visible; with `span`, only
 * the samples taken within it (one phase of a longer run).
 */
export function summarizeProfile(dir: string, top = 12, span?: ProfileSpan): { totalMs: number; busyMs: number; entries: ProfileEntry[] } {
  // One file per V8 thread (tsx's loader runs in a worker): the main thread is the busiest one.
  let best: { totalMs: number; busyMs: number; entries: ProfileEntry[] } | undefined;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const s = summarizeOne(join(dir, file), top, span);
    if (best === undefined || s.busyMs > best.busyMs) best = s;
  }
  if (best === undefined) throw new Error(`no .cpuprofile in ${dir}`);
  return best;
}

function summarizeOne(file: string, top: number, span?: ProfileSpan): { totalMs: number; busyMs: number; entries: ProfileEntry[] } {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: ProfileNode[];
    startTime: number;
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parentOf = new Map<number, ProfileNode>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parentOf.set(c, n);
  const selfUs = new Map<string, number>();
  let totalUs = 0;
  let sampledAt = prof.startTime;
  for (let i = 0; i < prof.samples.length; i++) {
    const node = byId.get(prof.samples[i] as number);
    const dt = prof.timeDeltas[i] ?? 0;
    sampledAt += dt;
    if (span !== undefined && (sampledAt < span.fromUs || sampledAt > span.toUs)) continue;
    if (node === undefined) continue;
    // The profiler's own work when the window closes (inspector dispatch of Profiler.stop).
    if (parentOf.get(node.id)?.callFrame.url === 'node:inspector') continue;
    totalUs += dt;
    const cf = node.callFrame;
    const url = cf.url.startsWith('file://') ? relative(REPO_ROOT, new URL(cf.url).pathname) : cf.url;
    // TypeScript runs through tsx's transform: its line numbers are not the source's, so only the file is shown.
    const at = url === '' ? '' : url.endsWith('.ts') ? url : `${url}:${cf.lineNumber + 1}`;
    // Native code (a binding's work, e.g. onnxruntime's run) has no name or url: name it by its caller.
    const caller = parentOf.get(node.id)?.callFrame;
    const native = cf.functionName === '' && cf.url === '' && caller !== undefined;
    const callerUrl = caller?.url.startsWith('file://') ? relative(REPO_ROOT, new URL(caller.url).pathname) : (caller?.url ?? '');
    const key = native
      ? `(native, called from ${caller.functionName || '(anonymous)'})\t${callerUrl}`
      : `${cf.functionName || '(anonymous)'}\t${at}`;
    selfUs.set(key, (selfUs.get(key) ?? 0) + dt);
  }
  const idleUs = selfUs.get('(idle)\t') ?? 0;
  const entries = [...selfUs.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([key, us]) => {
      const [fn, where] = key.split('\t') as [string, string];
      return { fn, where, selfMs: Math.round(us / 1000), selfPct: Number(((us / totalUs) * 100).toFixed(1)) };
    });
  return { totalMs: Math.round(totalUs / 1000), busyMs: Math.round((totalUs - idleUs) / 1000), entries };
}

/**
 * Profiles this process's main thread (V8 sampling profiler, 1 ms) while `fn` runs, writes the
 * profile to `file` (.cpuprofile, loadable in Chrome DevTools) and returns its summary. Used to
 * profile a steady-state window of an in-process daemon without its start-up.
 */
export async function profileWindow(
  file: string,
  fn: () => Promise<void>,
  top = 12,
): Promise<{ totalMs: number; busyMs: number; entries: ProfileEntry[] }> {
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 1000 });
    await session.post('Profiler.start');
    await fn();
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(file, JSON.stringify(profile));
  } finally {
    session.disconnect();
  }
  return summarizeOne(file, top);
}

/** Prints a profile summary as a table. */
export function printProfile(title: string, p: { totalMs: number; busyMs: number; entries: ProfileEntry[] }): void {
  process.stdout.write(
    `\n${title} (daemon main-thread CPU profile: ${p.totalMs} ms sampled, ${p.busyMs} ms not idle)\n\n${table(
      ['self %', 'self ms', 'function', 'where'],
      p.entries.map((e) => [e.selfPct.toFixed(1), String(e.selfMs), e.fn, e.where]),
    )}`,
  );
}

/**
 * Keeps up to `window` batches unacknowledged on `s`: `send` writes one, and after each Ack
 * another while `more()`; resolves with the number of Acks once none is outstanding.
 */
export async function keepSending(s: ReturnType<typeof rawStream>, window: number, send: () => void, more: () => boolean): Promise<number> {
  let inflight = 0;
  let acks = 0;
  while (inflight < window && more()) {
    send();
    inflight++;
  }
  while (inflight > 0) {
    const m = await s.next(60_000);
    if (m === 'end') throw new Error('stream ended');
    if (m.error) throw new Error(`${m.error.code}: ${m.error.message}`);
    if (!m.ack) continue;
    inflight--;
    acks++;
    if (more()) {
      send();
      inflight++;
    }
  }
  return acks;
}
