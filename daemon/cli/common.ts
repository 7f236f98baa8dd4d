/** Shared pieces of the `motive` commands: output, REST access, tables. */

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

export const defaultIo: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

/** One `motive` sub-command. `run` returns the exit code (0 ok, 1 failure, 2 usage). */
export interface Command {
  /** One line for `motive help`, e.g. `status [--url URL]   daemon health and its runs`. */
  readonly usage: string;
  run(args: string[], io: Io, env: NodeJS.ProcessEnv): Promise<number>;
}

/** Thrown for a usage error: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * Thrown for input the command cannot work with although its usage was right (a malformed file,
 * an unknown run, a daemon that does not answer): printed as one line, exit code 2.
 */
export class InputError extends Error {
  override readonly name = 'InputError';
}

/** Runs requests to the daemon; a failure (unreachable, unknown run, an error answer) is the user's input error, printed as one line, not a crash. */
export async function fromDaemon<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof InputError || err instanceof UsageError) throw err;
    throw new InputError((err as Error).message);
  }
}

/** The daemon's HTTP base URL: --url, else $MOTIVE_URL, else http://127.0.0.1:8080. */
export function baseUrl(url: string | undefined, env: NodeJS.ProcessEnv): string {
  return (url ?? env['MOTIVE_URL'] ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
}

/** Authorization header from $MOTIVE_TOKEN, when set. */
export function authHeaders(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const token = env['MOTIVE_TOKEN'];
  return token === undefined || token === '' ? {} : { authorization: `Bearer ${token}` };
}

/**
 * Fetches a JSON document from the daemon (sending $MOTIVE_TOKEN as a bearer token), with a
 * readable error when it is down or answers an error.
 */
export async function getJson(url: string, init?: RequestInit, env: NodeJS.ProcessEnv = process.env): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, headers: { ...authHeaders(env), ...(init?.headers as Record<string, string> | undefined) } });
  } catch (err) {
    const cause = (err as Error).cause;
    const why = cause instanceof Error ? cause.message : (err as Error).message;
    throw new Error(`cannot reach the daemon at ${new URL(url).origin} (${why}); is it running? start it with: npm start`);
  }
  const body = (await res.json()) as { code?: string; message?: string };
  if (!res.ok) throw new Error(`${body.code ?? res.status}: ${body.message ?? res.statusText}`);
  return body;
}

/** Renders rows as an aligned text table. Numeric columns are right-aligned. */
export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? formatNumber(c) : c)));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number'));
  const line = (r: string[]): string =>
    r
      .map((c, i) => (numeric[i] ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n') + '\n';
}

export function formatNumber(n: number): string {
  if (Number.isInteger(n)) return String(n);
  const a = Math.abs(n);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return n.toExponential(3);
  return n.toFixed(4);
}
