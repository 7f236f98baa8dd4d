import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { isLiveEvent, type LiveEvent, type LiveTopEvent } from '../../api/live-events.js';
import { UsageError, authHeaders, baseUrl, defaultIo, formatNumber, table, type Command, type Io } from '../common.js';

/** What the watch view shows; updated from feed events, rendered as text. */
export interface WatchState {
  readonly run: string;
  top: LiveTopEvent | undefined;
  sketchesPerSec: number;
  /** The latest event lines, newest last, at most {@link WATCH_LOG_LINES}. */
  readonly log: string[];
}

/** Event lines kept under the tables. */
export const WATCH_LOG_LINES = 8;

/** One line describing a feed event (undefined for `top`, which redraws the tables instead). */
export function describeEvent(e: LiveEvent): string | undefined {
  const time = new Date(e.t).toISOString().slice(11, 19);
  switch (e.type) {
    case 'hello':
      return `${time}  ${e.exists ? 'watching' : 'waiting for'} run ${e.run}`;
    case 'batches':
      return `${time}  +${e.batches} batches (${e.sketches} sketches), step ${e.lastStep}, ${formatNumber(e.sketchesPerSec)} sketches/s`;
    case 'weights':
      return `${time}  weights v${e.version}: ${e.changed} changed, ${e.downweighted} down-weighted`;
    case 'harmful': {
      const ids = e.samples.map((s) => s.id);
      const more = e.count - ids.length;
      return `${time}  harmful: ${ids.slice(0, 6).join(', ')}${ids.length > 6 || more > 0 ? ` (+${Math.max(0, ids.length - 6) + more} more)` : ''}`;
    }
    case 'queries':
      return `${time}  query set v${e.version} at step ${e.step} (${e.queries} queries)`;
    case 'top':
      return undefined;
  }
}

/** Folds one event into the view state. */
export function applyEvent(state: WatchState, e: LiveEvent): void {
  if (e.type === 'top') {
    state.top = e;
    return;
  }
  // Batches arrive several times a second; the rate line says enough about them in the full view.
  if (e.type === 'batches') {
    state.sketchesPerSec = e.sketchesPerSec;
    return;
  }
  const line = describeEvent(e);
  if (line === undefined) return;
  state.log.push(line);
  if (state.log.length > WATCH_LOG_LINES) state.log.splice(0, state.log.length - WATCH_LOG_LINES);
}

/** The full-screen view: run totals, weight histogram, top harmful / helpful clips, recent events. */
export function renderWatch(state: WatchState): string {
  const t = state.top;
  const lines: string[] = [`motive watch — run ${state.run}   (Ctrl-C to stop)`, ''];
  if (t === undefined) {
    lines.push('waiting for the run…');
  } else {
    lines.push(
      `samples ${t.samples}   sketches ${t.sketches}   ${formatNumber(state.sketchesPerSec)} sketches/s   step ${t.lastStep}   ` +
        `weights v${t.weightsVersion}   query set ${t.queryVersion > 0 ? `v${t.queryVersion}` : 'none yet'}`,
      `down-weighted ${t.downweighted}   quarantined ${t.quarantined}`,
      '',
    );
    const max = Math.max(1, ...t.weightHistogram.counts);
    t.weightHistogram.counts.forEach((c, i) => {
      const le = t.weightHistogram.le[i] ?? 1;
      lines.push(`  w ≤ ${le.toFixed(2)}  ${'█'.repeat(Math.round((30 * c) / max)).padEnd(30)} ${c}`);
    });
    for (const [title, rows] of [
      ['most harmful', t.harmful],
      ['most helpful', t.helpful],
    ] as const) {
      lines.push('', title);
      lines.push(
        table(
          ['#', 'clip', 'score', 'weight', 'seen'],
          rows.map((s, i) => [i + 1, s.id, s.score, s.weight, s.seen]),
        ).trimEnd(),
      );
    }
  }
  lines.push('', 'events', ...state.log.map((l) => `  ${l}`));
  return lines.join('\n') + '\n';
}

/** The feed's WebSocket URL for an HTTP base URL. */
export function liveUrl(base: string, run: string, types: string | undefined): string {
  const u = new URL(`${base}/v1/runs/${encodeURIComponent(run)}/live`);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  if (types !== undefined) u.searchParams.set('types', types);
  return u.toString();
}

/**
 * Streams the feed to `io` until `stopAfterMs` passes, SIGINT, or the daemon closes the
 * connection. `screen` redraws a full view (a terminal); otherwise one line per event.
 */
export function watchFeed(
  url: string,
  run: string,
  io: Io,
  options: { screen: boolean; stopAfterMs?: number; headers?: Record<string, string> },
): Promise<number> {
  const state: WatchState = { run, top: undefined, sketchesPerSec: 0, log: [] };
  const ws = new WebSocket(url, { headers: options.headers ?? {} });
  return new Promise((resolve) => {
    let done = false;
    let redraw: NodeJS.Timeout | undefined;
    const finish = (code: number): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(redraw);
      process.off('SIGINT', onSigint);
      ws.close();
      resolve(code);
    };
    const onSigint = (): void => finish(0);
    process.on('SIGINT', onSigint);
    const timer = options.stopAfterMs === undefined ? undefined : setTimeout(() => finish(0), options.stopAfterMs);
    ws.on('unexpected-response', (_req, res) => {
      io.err(
        `motive watch: the daemon refused the feed: HTTP ${res.statusCode ?? '?'}${res.statusCode === 401 ? ' (set $MOTIVE_TOKEN)' : ''}\n`,
      );
      finish(1);
    });
    ws.on('error', (err) => {
      io.err(`motive watch: ${err.message}\n`);
      finish(1);
    });
    ws.on('close', () => {
      if (!done) io.err('motive watch: the daemon closed the feed\n');
      finish(1);
    });
    ws.on('message', (data: Buffer) => {
      const e: unknown = JSON.parse(data.toString());
      // Something else than an event (a newer daemon's, say) is passed over.
      if (!isLiveEvent(e)) return;
      if (!options.screen) {
        const line = e.type === 'top' ? topLine(e) : describeEvent(e);
        if (line !== undefined) io.out(line + '\n');
        return;
      }
      applyEvent(state, e);
      // Coalesce redraws: a burst of events paints once.
      redraw ??= setTimeout(() => {
        redraw = undefined;
        io.out('\x1b[H\x1b[2J' + renderWatch(state));
      }, 50);
    });
  });
}

function topLine(t: LiveTopEvent): string {
  const worst = t.harmful
    .slice(0, 3)
    .map((s) => `${s.id} (${formatNumber(s.score)})`)
    .join(', ');
  return `${new Date().toISOString().slice(11, 19)}  ${t.samples} samples, step ${t.lastStep}, ${t.downweighted} down-weighted; most harmful: ${worst}`;
}

export const watchCommand: Command = {
  usage: `watch --run R [--types T,...] [--for SECONDS] [--plain] [--url URL]
                                     live view of a run: totals, weights, top clips, events`,
  run: async (args, io, env) => {
    const { values } = parseArgs({
      args,
      options: {
        run: { type: 'string' },
        types: { type: 'string' },
        for: { type: 'string' },
        plain: { type: 'boolean' },
        url: { type: 'string' },
      },
    });
    if (values.run === undefined) throw new UsageError('--run is required');
    let stopAfterMs: number | undefined;
    if (values.for !== undefined) {
      const seconds = Number(values.for);
      if (!(seconds > 0)) throw new UsageError('--for takes a positive number of seconds');
      stopAfterMs = seconds * 1000;
    }
    const url = liveUrl(baseUrl(values.url, env), values.run, values.types);
    return watchFeed(url, values.run, io, {
      // Full-screen redraws only on the real terminal, never on an injected writer.
      screen: values.plain !== true && process.stdout.isTTY && io === defaultIo,
      headers: authHeaders(env),
      ...(stopAfterMs === undefined ? {} : { stopAfterMs }),
    });
  },
};
