/** The simulator's own Prometheus metrics, next to the process defaults. */
import { Counter, Gauge, type Registry } from 'prom-client';

/** How a request to the device API ended. */
export type Outcome = 'ok' | 'unauthorized' | 'not_found' | 'method_not_allowed' | 'faulted' | 'error';

const OUTCOMES: readonly Outcome[] = ['ok', 'unauthorized', 'not_found', 'method_not_allowed', 'faulted', 'error'];

/** Counters the device API records. */
export interface DevicesMetrics {
  readonly requests: Counter<'outcome'>;
  readonly faults: Counter<'mode'>;
}

/** Registers the simulator's metrics in registry; the gauges read flats and overrides when scraped. */
export function createDevicesMetrics(registry: Registry, flats: number, overrides: () => number): DevicesMetrics {
  const requests = new Counter({
    name: 'flatline_devices_requests_total',
    help: 'Requests to the device API, by outcome (faulted: answered with a configured behaviour)',
    labelNames: ['outcome'],
    registers: [registry],
  });
  for (const outcome of OUTCOMES) requests.inc({ outcome }, 0);
  const faults = new Counter({
    name: 'flatline_devices_faults_total',
    help: 'Authenticated requests answered with a fault, by behaviour mode',
    labelNames: ['mode'],
    registers: [registry],
  });
  new Gauge({ name: 'flatline_devices_flats', help: 'Flats simulated (entries of the credentials file)', registers: [registry] }).set(flats);
  new Gauge({
    name: 'flatline_devices_behaviour_overrides',
    help: 'Flats currently set to a behaviour other than ok',
    registers: [registry],
    collect() {
      this.set(overrides());
    },
  });
  return { requests, faults };
}
