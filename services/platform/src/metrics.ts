/** Prometheus metrics: one registry per process, served on its own HTTP port. */
import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import type { Logger } from './logger.ts';
import { listen } from './net.ts';

/** The process registry with the metrics every gRPC service records. */
export interface ServiceMetrics {
  readonly registry: Registry;
  readonly rpcs: Counter<'method' | 'code'>;
  readonly rpcSeconds: Histogram<'method'>;
}

/** Creates the registry, with Node's default process metrics. */
export function createMetrics(service: string): ServiceMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    rpcs: new Counter({
      name: 'flatline_rpc_total',
      help: 'gRPC calls handled, by method and status code',
      labelNames: ['method', 'code'],
      registers: [registry],
    }),
    rpcSeconds: new Histogram({
      name: 'flatline_rpc_duration_seconds',
      help: 'Time to handle a gRPC call, by method',
      labelNames: ['method'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
  };
}

/** A running /metrics endpoint. */
export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Serves GET /metrics on address (host:port); port 0 picks a free port. */
export async function serveMetrics(address: string, registry: Registry, logger: Logger): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (err: unknown) => {
        logger.error({ err }, 'metrics collection failed');
        res.writeHead(500).end();
      },
    );
  });
  const port = await listen(server, address, 'metrics');
  return {
    port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Tallies of the last 60 s, one slot per second: how many, and the largest value. */
export class LastMinute {
  private readonly slots = new Map<number, { n: number; max: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  add(value = 0): void {
    const s = Math.floor(this.now() / 1000);
    const slot = this.slots.get(s) ?? { n: 0, max: 0 };
    slot.n += 1;
    slot.max = Math.max(slot.max, value);
    this.slots.set(s, slot);
    if (this.slots.size > 120) this.prune(s);
  }

  /** How many were added, and the largest value, in the last 60 s. */
  read(): { n: number; max: number } {
    const s = Math.floor(this.now() / 1000);
    this.prune(s);
    let n = 0;
    let max = 0;
    for (const slot of this.slots.values()) {
      n += slot.n;
      max = Math.max(max, slot.max);
    }
    return { n, max };
  }

  private prune(s: number): void {
    for (const k of this.slots.keys()) if (k <= s - 60) this.slots.delete(k);
  }
}
