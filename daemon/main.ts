/**
 * Composition root of `motived`: load config, start the daemon, print the ready line, and turn
 * SIGTERM/SIGINT into a graceful drain. The only place that calls process.exit.
 */
import { loadConfig } from './config/index.js';
import { createLogger, describeError, isMotiveError } from './shared/index.js';
import { startDaemon } from './daemon.js';
import { startTracing } from './tracing.js';

export async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    process.stderr.write(`motived: ${describeError(err)}\n`);
    process.exit(2);
  }
  const log = createLogger(config.logLevel);
  // The Ack-path trace, a diagnostic (daemon/shared/trace.ts), subscribed to its channels.
  const traceFile = process.env['MOTIVE_TRACE_FILE'];
  if (traceFile !== undefined && traceFile !== '') startTracing(traceFile, log);
  let daemon;
  try {
    daemon = await startDaemon(config, log);
  } catch (err) {
    const code = isMotiveError(err) ? err.code : 'MOTIVE_START';
    log.fatal({ code, err: describeError(err) }, 'start failed');
    process.stderr.write(`motived: ${code}: ${describeError(err)}\n`);
    process.exit(1);
  }
  const ready = {
    grpcPort: daemon.grpcPort,
    httpPort: daemon.httpPort,
    dataDir: config.dataDir,
    grpcHost: config.grpc.host,
    httpHost: config.http.host,
  };
  // The ready line is a contract (supervisors and tests wait for it): printed at any log level.
  if (log.isLevelEnabled('info')) log.info(ready, 'ready');
  else process.stdout.write(`${JSON.stringify({ ...ready, msg: 'ready' })}\n`);
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) {
      log.warn({ signal }, 'second signal, exiting now');
      process.exit(130);
    }
    signalled = true;
    log.info({ signal, graceMs: config.shutdownGraceMs }, 'draining');
    daemon.stop().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err: describeError(err) }, 'stop failed');
        process.exit(1);
      },
    );
  };
  // Past a file-size limit (ulimit -f) the kernel would kill the process; handled, the write fails
  // with EFBIG instead and the store answers MOTIVE_STORE_FULL, like on a full disk.
  // A failed LMDB commit also rejects lmdb-js's internal promises (e.g. its commitError); the
  // commit's own error is already handled and reported to the trainers, so log and stay up.
  process.on('unhandledRejection', (reason) => log.error({ err: describeError(reason) }, 'unhandled rejection'));
  process.on('SIGXFSZ', () => log.error('file size limit reached; new batches are refused'));
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
