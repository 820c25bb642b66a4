/** The last step of a service's start: its gRPC host and /metrics listening, announced, with one stop for both. */
import type { GrpcHost } from './grpc-host.ts';
import type { StartedServer } from './lifecycle.ts';
import { announceListening, type Logger } from './logger.ts';
import { serveMetrics, type ServiceMetrics } from './metrics.ts';
import { withPort } from './net.ts';

/** Where a service listens, and how long its shutdown may let calls finish. */
export interface ServeOptions {
  readonly listen: string;
  readonly metricsListen: string;
  readonly shutdownGraceMs: number;
  readonly logger: Logger;
}

/**
 * Listens with host and serves metrics' /metrics, logs the one "listening"
 * line, and returns where both listen. stop() shuts the host down (calls
 * under way get shutdownGraceMs), then runs release (the service's own
 * clean-up: its database client, its timers), then closes /metrics.
 */
export async function serveService(host: GrpcHost, metrics: ServiceMetrics, options: ServeOptions, release: () => Promise<void>): Promise<StartedServer> {
  const port = await host.listen(options.listen);
  const metricsServer = await serveMetrics(options.metricsListen, metrics.registry, options.logger);
  const grpc = withPort(options.listen, port);
  const metricsAddress = withPort(options.metricsListen, metricsServer.port);
  announceListening(options.logger, { grpc, metrics: metricsAddress });
  return {
    grpc,
    metrics: metricsAddress,
    stop: async () => {
      await host.shutdown(options.shutdownGraceMs);
      await release();
      await metricsServer.close();
    },
  };
}
