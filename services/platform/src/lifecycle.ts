/** Process lifecycle: configuration errors, fatal errors and shutdown signals. */
import { ConfigError, EXIT_CONFIG } from './config.ts';
import type { Logger } from './logger.ts';

/**
 * Runs a service's main: a ConfigError exits with EXIT_CONFIG and a line
 * naming the variable; any other start-up error exits 1.
 */
export function runMain(service: string, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`${service}: bad configuration: ${err.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    process.stderr.write(`${service}: cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}

/**
 * On the first SIGTERM or SIGINT runs stop() and exits 0 (1 if stop failed).
 * Later signals are ignored: stop() is bounded by its own grace period, and a
 * supervisor often sends SIGTERM right after the terminal's SIGINT.
 */
export function onShutdownSignal(logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.info({ signal }, 'already shutting down');
      return;
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    stop().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handle);
  process.on('SIGINT', handle);
}

/** A service started by its start function (main.ts, or a test in-process): where it listens and how to stop it. */
export interface StartedServer {
  /** host:port of its gRPC server. */
  readonly grpc: string;
  /** host:port of its /metrics endpoint. */
  readonly metrics: string;
  /** Stops serving (bounded by the configured grace period) and closes its database client. */
  stop(): Promise<void>;
}
