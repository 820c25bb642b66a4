/**
 * Fault scenarios on a local stack, wherever they act: hosts whose clients
 * dial through the stack's Istio plane (--mesh istio) get a VirtualService
 * that istiod pushes, as on a cluster; every other host (and every host of a
 * --mesh local stack) reads the fault file. `flatline fault`, `chaos
 * campaign` and the sweep after a chaos run all toggle faults through here,
 * so none of them can write a fault where no client reads it.
 */
import { join } from 'node:path';
import { baselineVirtualService, DEFAULT_MESH, faultVirtualService, planOf, readFaultFile, scenario, writeFaultFile, type Fault } from '@flatline/mesh';
import { applyPlaneRoute, PLANE_HOSTS, planeVirtualService, readStackFile, type IstioObject, type PlaneHandle, type PlaneHost } from '@flatline/stack';

/**
 * Hosts whose faults are VirtualServices istiod pushes on a stack started
 * with --mesh istio, as on a cluster: storage and query, whose clients dial
 * through the plane (ingestion's storage client, the supervisor's query
 * client), and devices, whose routes each ingestion replica asks for as a
 * sidecar of its own (workload <replica>-sidecar) and applies in its HTTP
 * fault interceptor (the device hop is HTTP/1.1, which no proxyless client
 * carries).
 */
export { PLANE_HOSTS, type PlaneHost };

/** The stack's Istio plane for one host's faults, and the xDS clients that must take every change of its routes. */
export interface PlaneTarget {
  readonly host: PlaneHost;
  readonly handle: PlaneHandle;
  readonly expect: string[];
  readonly supervisor: string | undefined;
}

const isPlaneHost = (host: string): host is PlaneHost => (PLANE_HOSTS as readonly string[]).includes(host);

/** The fault file of the stack in stateDir. */
export const faultFile = (stateDir: string): string => join(stateDir, 'faults.json');

/** The local stack's Istio plane for host's faults, when the stack runs one and host's clients dial through it. */
export function planeFor(stateDir: string, host: string): PlaneTarget | undefined {
  if (!isPlaneHost(host)) return undefined;
  const stack = readStackFile(stateDir);
  if (stack?.istiod === undefined) return undefined;
  // storage: the running ingestion replicas, as istiod names their xDS clients (workload.namespace); devices: their
  // sidecar clients (<replica>-sidecar). query: its client is the supervisor's, made at its first probe; any client
  // istiod pushes to must ACK all the same.
  const ingestion = (stack.replicas ?? []).filter((r) => r.name.startsWith('ingestion-') && r.pid !== undefined).map((r) => r.name);
  const expect = host === 'storage' ? ingestion.map((n) => `${n}.${DEFAULT_MESH.namespace}`) : host === 'devices' ? ingestion.map((n) => `${n}-sidecar.${DEFAULT_MESH.namespace}`) : [];
  return { host, handle: { config: stack.istiod.config, debug: stack.istiod.debug }, expect, supervisor: stack.supervisor };
}

/** The plane of the host of a scenario by name (undefined: not a plane host, or no plane). */
export function planeOfScenario(stateDir: string, name: string): PlaneTarget | undefined {
  const host = scenario(name)?.build({}).host;
  return host === undefined ? undefined : planeFor(stateDir, host);
}

/** The faults in force on the plane for its host, read back from its VirtualService. */
export function planeFaults(t: PlaneTarget): Fault[] {
  const vs = planeVirtualService(t.handle.config, t.host);
  return vs === undefined ? [] : planOf(vs as unknown as Record<string, unknown>);
}

/** Puts these faults (none: the baseline) on the host through istiod; resolves with a line saying which clients ACKed the routes. */
export async function applyOnPlane(t: PlaneTarget, faults: readonly Fault[]): Promise<string> {
  const vs = (faults.length > 0 ? faultVirtualService(t.host, faults, DEFAULT_MESH) : baselineVirtualService(t.host, DEFAULT_MESH)).toJSON() as unknown as IstioObject;
  const applied = await applyPlaneRoute(t.handle, t.host, vs, t.expect);
  return `istiod pushed the routes of ${t.host}: ACKed by ${applied.ackedBy.length > 0 ? applied.ackedBy.join(', ') : `no client (none dials ${t.host} now; one that does gets them when it connects)`} in ${applied.waitedMs} ms`;
}

/**
 * Turns a fault on (replacing one of its name) or off where its host's
 * clients read it: the plane (resolving once they ACKed) or the fault file.
 * Resolves with where it went; throws when the plane refused or timed out
 * (the previous routes are then back).
 */
export async function setScenarioFault(stateDir: string, fault: Fault, on: boolean): Promise<string> {
  const plane = planeFor(stateDir, fault.host);
  if (plane !== undefined) {
    const others = planeFaults(plane).filter((f) => f.name !== fault.name);
    return applyOnPlane(plane, on ? [...others, fault] : others);
  }
  const file = faultFile(stateDir);
  const others = readFaultFile(file).filter((f) => f.name !== fault.name);
  writeFaultFile(file, on ? [...others, fault] : others);
  return `fault file ${on ? 'holds' : 'no longer holds'} ${fault.name}`;
}

/**
 * Removes every fault left on the stack's Istio plane (each host back to its
 * baseline). Resolves with what it found there, one line per host; a host it
 * could not restore is named in the line too.
 */
export async function sweepPlaneFaults(stateDir: string): Promise<string[]> {
  const found: string[] = [];
  for (const plane of PLANE_HOSTS.map((host) => planeFor(stateDir, host))) {
    const on = plane === undefined ? [] : planeFaults(plane);
    if (plane === undefined || on.length === 0) continue;
    try {
      await applyOnPlane(plane, []);
      found.push(`faults still on the Istio plane for ${plane.host}: ${on.map((f) => f.name).join(', ')}`);
    } catch (err) {
      found.push(`faults still on the Istio plane for ${plane.host}: ${on.map((f) => f.name).join(', ')}, NOT REMOVED: ${(err as Error).message}`);
    }
  }
  return found;
}
