#!/usr/bin/env node
// motive: the Motive command line (start, status, top). TypeScript sources run through tsx's loader.
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('../daemon/cli/cli.ts');
process.exitCode = await runCli(process.argv.slice(2));
