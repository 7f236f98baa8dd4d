/**
 * Vitest's global setup: the daemon bundled once for the whole run (daemon-bundle.ts), so the
 * tests that start it as a child process (`spawnDaemon`) skip tsx's per-start compilation. Its
 * entry reaches the test workers, started after this, through `TEST_DAEMON_BUNDLE`. The Python
 * suite and `npm start` keep running `bin/motived.js`, so both entries stay exercised.
 */
import { buildDaemonBundle, type DaemonBundle } from './daemon-bundle.js';

let bundle: DaemonBundle | undefined;

export async function setup(): Promise<void> {
  bundle = await buildDaemonBundle();
  process.env.TEST_DAEMON_BUNDLE = bundle.entry;
}

export function teardown(): void {
  bundle?.remove();
}
