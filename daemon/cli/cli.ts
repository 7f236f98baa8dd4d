/**
 * `motive`: the command line. Each sub-command lives in `commands/<name>.ts` and is listed in
 * {@link COMMANDS}. Returns an exit code instead of exiting.
 */
import { InputError, UsageError, defaultIo, type Command, type Io } from './common.js';
import { startCommand } from './commands/start.js';
import { statusCommand } from './commands/status.js';
import { topCommand } from './commands/top.js';
import { runsCommand } from './commands/runs.js';
import { backupCommand } from './commands/backup.js';
import { restoreCommand } from './commands/restore.js';
import { checkCommand } from './commands/check.js';
import { profileCommand } from './commands/profile.js';
import { selectCommand } from './commands/select.js';
import { exportCommand } from './commands/export.js';
import { watchCommand } from './commands/watch.js';
import { demoCommand } from './commands/demo.js';
import { replayCommand } from './commands/replay.js';
import { traceCommand } from './commands/trace.js';
import { evalCommand } from './commands/eval.js';
import { reportCommand } from './commands/report.js';

/** Every sub-command, in the order `motive help` lists them. */
export const COMMANDS: Readonly<Record<string, Command>> = {
  start: startCommand,
  status: statusCommand,
  top: topCommand,
  runs: runsCommand,
  backup: backupCommand,
  restore: restoreCommand,
  check: checkCommand,
  profile: profileCommand,
  select: selectCommand,
  export: exportCommand,
  eval: evalCommand,
  report: reportCommand,
  watch: watchCommand,
  demo: demoCommand,
  replay: replayCommand,
  trace: traceCommand,
};

function help(): string {
  const lines = Object.entries(COMMANDS).map(([, c]) => `  motive ${c.usage}`);
  return `motive — live motion attribution for video fine-tunes

Usage:
${lines.join('\n')}

URL defaults to $MOTIVE_URL or http://127.0.0.1:8080.
`;
}

export async function runCli(argv: string[], io: Io = defaultIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    io.out(help());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    io.err(`motive: unknown command "${name}"\n${help()}`);
    return 2;
  }
  try {
    return await command.run(rest, io, env);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) {
      io.err(`motive ${name}: ${(err as Error).message}\nusage: motive ${command.usage}\n`);
      return 2;
    }
    if (err instanceof InputError) {
      io.err(`motive ${name}: ${err.message}\n`);
      return 2;
    }
    const code = (err as { code?: unknown }).code;
    const prefix = typeof code === 'string' && code.startsWith('MOTIVE_') ? `${code}: ` : '';
    io.err(`motive ${name}: ${prefix}${(err as Error).message}\n`);
    return 1;
  }
}
