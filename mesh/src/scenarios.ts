/**
 * The named fault scenarios: each builds a declaration from a few options.
 * `flatline fault on <scenario>`, the chaos experiments and the Istio charts
 * all start here.
 */
import { declareFault, type Fault, type FaultInput } from './fault.ts';

/** Options a scenario may take. */
export interface ScenarioOptions {
  /** Flats to target (device scenarios); none means every flat. */
  readonly flats?: readonly string[];
  /** Share of requests affected, 0–100. */
  readonly percent?: number;
  /** Delay in milliseconds. */
  readonly delayMs?: number;
  /** HTTP status (device aborts) or gRPC status name (service aborts). */
  readonly status?: string | number;
}

/** A named scenario. */
export interface Scenario {
  readonly name: string;
  readonly description: string;
  readonly build: (o: ScenarioOptions) => Fault;
}

const ms = (n: number): string => (n % 1000 === 0 ? `${n / 1000}s` : `${n}ms`);
const flatMatches = (flats: readonly string[] | undefined): FaultInput['match'] =>
  flats === undefined || flats.length === 0 ? [] : flats.map((id) => ({ uri: { prefix: `/flat/${id}/` } }));
const method = (service: string, rpc: string) => [{ uri: { exact: `/flatline.${service}.v1.${service[0]!.toUpperCase()}${service.slice(1)}Service/${rpc}` } }];

/** Every scenario, by name. */
export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'devices-slow',
    description: 'the device gateway answers the chosen flats late (default: 30 s, every request)',
    build: (o) =>
      declareFault({ name: 'devices-slow', host: 'devices', match: flatMatches(o.flats), fault: { delay: { fixedDelay: ms(o.delayMs ?? 30000), percentage: { value: o.percent ?? 100 } } } }),
  },
  {
    name: 'devices-failing',
    description: 'the device gateway answers the chosen flats with an HTTP error (default: 503, every request)',
    build: (o) =>
      declareFault({ name: 'devices-failing', host: 'devices', match: flatMatches(o.flats), fault: { abort: { httpStatus: Number(o.status ?? 503), percentage: { value: o.percent ?? 100 } } } }),
  },
  {
    name: 'storage-unavailable',
    description: 'Append answers gRPC UNAVAILABLE without reaching storage (default: every call)',
    build: (o) =>
      declareFault({ name: 'storage-unavailable', host: 'storage', match: method('storage', 'Append'), fault: { abort: { grpcStatus: String(o.status ?? 'UNAVAILABLE'), percentage: { value: o.percent ?? 100 } } } }),
  },
  {
    name: 'storage-slow',
    description: 'Append is delayed (default: 2 s, every call)',
    build: (o) => declareFault({ name: 'storage-slow', host: 'storage', match: method('storage', 'Append'), fault: { delay: { fixedDelay: ms(o.delayMs ?? 2000), percentage: { value: o.percent ?? 100 } } } }),
  },
  {
    name: 'query-slow',
    description: 'every query call is delayed (default: 1 s, every call)',
    build: (o) => declareFault({ name: 'query-slow', host: 'query', match: [{ uri: { prefix: '/flatline.query.v1.QueryService/' } }], fault: { delay: { fixedDelay: ms(o.delayMs ?? 1000), percentage: { value: o.percent ?? 100 } } } }),
  },
];

/** The scenario called name, or undefined. */
export function scenario(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name);
}
