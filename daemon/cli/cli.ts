/**
 * `motive`: the command line. `start` runs the daemon (same as `npm start`); `status` and `top`
 * read a running daemon's REST API. Returns an exit code instead of exiting.
 */
import { parseArgs } from 'node:util';

const HELP = `motive — live motion attribution for video fine-tunes

Usage:
  motive start                       run the daemon (config: MOTIVE_CONFIG, MOTIVE_* env)
  motive status [--url URL]          daemon health and its runs
  motive top --run R [--harmful|--helpful|--votes] [--limit N] [--url URL]
                                     the run's clips, most harmful first by default

URL defaults to $MOTIVE_URL or http://127.0.0.1:8080.
`;

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

const defaultIo: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

async function getJson(url: string): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (err) {
    throw new Error(
      `cannot reach the daemon at ${new URL(url).origin} (${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}); is it running? start it with: npm start`,
    );
  }
  const body = (await res.json()) as { code?: string; message?: string };
  if (!res.ok) throw new Error(`${body.code ?? res.status}: ${body.message ?? res.statusText}`);
  return body;
}

/** Renders rows as an aligned text table. Numbers are right-aligned. */
export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? formatNumber(c) : c)));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number'));
  const line = (r: string[]): string =>
    r
      .map((c, i) => (numeric[i] ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number)))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n') + '\n';
}

function formatNumber(n: number): string {
  if (Number.isInteger(n)) return String(n);
  const a = Math.abs(n);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return n.toExponential(3);
  return n.toFixed(4);
}

interface RunSummary {
  id: string;
  samples: number;
  batches: number;
  sketches: number;
  lastStep: number;
  queries: number;
  weightsVersion: number;
  attachedTrainers: number;
}

interface SampleRow {
  id: string;
  score: number;
  seen: number;
  votes: number;
  weight: number;
  lastStep: number;
}

export async function runCli(argv: string[], io: Io = defaultIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [command, ...rest] = argv;
  const base = (url: string | undefined): string => (url ?? env['MOTIVE_URL'] ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
  try {
    switch (command) {
      case 'start': {
        const { main } = await import('../main.js');
        await main();
        return 0;
      }
      case 'status': {
        const { values } = parseArgs({ args: rest, options: { url: { type: 'string' } } });
        const url = base(values.url);
        const health = (await getJson(`${url}/healthz`)) as { status: string; daemon: string; queueDepth: number };
        const { runs } = (await getJson(`${url}/v1/runs`)) as { runs: RunSummary[] };
        io.out(`daemon ${health.daemon} at ${url}: ${health.status}, ${runs.length} run(s), queue depth ${health.queueDepth}\n`);
        if (runs.length > 0) {
          io.out(
            table(
              ['run', 'trainers', 'samples', 'batches', 'sketches', 'last step', 'queries', 'weights v'],
              runs.map((r) => [r.id, r.attachedTrainers, r.samples, r.batches, r.sketches, r.lastStep, r.queries, r.weightsVersion]),
            ),
          );
        }
        return 0;
      }
      case 'top': {
        const { values } = parseArgs({
          args: rest,
          options: {
            run: { type: 'string' },
            harmful: { type: 'boolean' },
            helpful: { type: 'boolean' },
            votes: { type: 'boolean' },
            limit: { type: 'string', default: '20' },
            url: { type: 'string' },
          },
        });
        if (values.run === undefined) {
          io.err('motive top: --run is required\n');
          return 2;
        }
        const order = values.helpful ? 'helpful' : values.votes ? 'votes' : 'harmful';
        const url = base(values.url);
        const { samples } = (await getJson(
          `${url}/v1/runs/${encodeURIComponent(values.run)}/samples?order=${order}&limit=${encodeURIComponent(values.limit)}`,
        )) as { samples: SampleRow[] };
        io.out(
          `run ${values.run}: ${samples.length} clip(s), ${order === 'harmful' ? 'most harmful' : order === 'helpful' ? 'most helpful' : 'most votes'} first\n`,
        );
        io.out(
          table(
            ['#', 'sample', 'score', 'votes', 'weight', 'seen', 'last step'],
            samples.map((s, i) => [i + 1, s.id, s.score, s.votes, s.weight, s.seen, s.lastStep]),
          ),
        );
        return 0;
      }
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        io.out(HELP);
        return command === undefined ? 2 : 0;
      default:
        io.err(`motive: unknown command "${command}"\n${HELP}`);
        return 2;
    }
  } catch (err) {
    io.err(`motive ${command}: ${(err as Error).message}\n`);
    return 1;
  }
}
