/** One pino logger per process; components take child loggers. */
import { pino, type Logger } from 'pino';

export type { Logger };

/** Paths whose values never reach a log line. */
const REDACT = [
  'password',
  '*.password',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'credentials',
  '*.credentials',
];

/**
 * Creates the process logger: JSON lines on stdout, or appended to file (a
 * service started in-process by a test logs to its own file).
 */
export function createLogger(service: string, level: string, file?: string): Logger {
  const options = {
    name: service,
    level,
    base: { service, pid: process.pid },
    redact: { paths: REDACT, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return file === undefined ? pino(options) : pino(options, pino.destination({ dest: file, append: true, sync: true }));
}

/**
 * A URL with any user name and password replaced, safe to log. Up to the
 * last '@': a malformed URL (the one an error message shows) may carry a
 * password with '/', '@' or spaces in it; redacting too much is harmless.
 */
export function redactUrl(url: string): string {
  return url.replace(/\/\/.*@/s, '//[redacted]@');
}

/**
 * Logs the one "listening" line with every address the process serves. It
 * is written at any log level: supervisors (flatline up, tests) wait for it.
 */
export function announceListening(logger: Logger, addresses: Record<string, string | number>): void {
  logger.child({}, { level: 'info' }).info(addresses, 'listening');
}

/** A logger that writes nothing (for a component built where no one reads its log). */
export function silentLogger(): Logger {
  return pino({ enabled: false });
}
