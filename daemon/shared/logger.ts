import { pino, type Logger as PinoLogger } from 'pino';

/** Structured logger (JSON lines on stdout). Token values are never passed to it. */
export type Logger = PinoLogger;

export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'motived' } });
}
