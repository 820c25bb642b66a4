/**
 * The charts of the mesh: the baseline routes, and one chart per fault
 * scenario, each holding the VirtualService that replaces its host's
 * baseline. The device DestinationRule that lets the sidecar fault device
 * traffic (TLS originated by the client sidecar) is part of the system
 * (flatline-4-mesh-policy): the device path needs it with or without faults.
 */
import { ApiObject, Chart, type App } from 'cdk8s';
import { type Fault, HOSTS, baselineVirtualService, faultVirtualService, type MeshSettings, SCENARIOS, type ScenarioOptions } from '@flatline/mesh';

type Renderable = { toJSON(): unknown; metadata?: { name?: string } | undefined; kind: string };

function add(chart: Chart, object: Renderable): void {
  new ApiObject(chart, `${object.kind}-${object.metadata?.name ?? 'unnamed'}`, object.toJSON() as ConstructorParameters<typeof ApiObject>[2]);
}

/** Baseline routes of every host (what `kubectl apply` restores after a fault). */
export class MeshBaselineChart extends Chart {
  constructor(scope: App, settings: MeshSettings) {
    super(scope, 'mesh-baseline', { disableResourceNameHashes: true });
    for (const host of HOSTS) add(this, baselineVirtualService(host, settings));
  }
}

/** One fault scenario: the VirtualService that replaces its host's baseline while it is on. */
export class FaultChart extends Chart {
  constructor(scope: App, fault: Fault, settings: MeshSettings) {
    super(scope, `fault-${fault.name}`, { disableResourceNameHashes: true });
    add(this, faultVirtualService(fault.host, [fault], settings));
  }
}

/** Adds the baseline and a chart per scenario (built with options) to app. */
export function meshCharts(app: App, settings: MeshSettings, options: ScenarioOptions = {}): void {
  new MeshBaselineChart(app, settings);
  for (const s of SCENARIOS) new FaultChart(app, s.build(options), settings);
}
