/**
 * `flatline fault`: toggles the fault scenarios of mesh/ on the local stack
 * (the fault file every injecting process follows) and shows what each
 * active fault touched.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { loadCredentials, stableFraction } from '@flatline/platform';
import { InvalidFaultError, readFaultFile, writeFaultFile, SCENARIOS, TCP_SCENARIOS, scenario, tcpScenario, baselineVirtualService, DEFAULT_MESH, durationMs, faultVirtualService, planOf, HOSTS, type Fault } from '@flatline/mesh';
import { callSupervisor, recordEvent, DEFAULT_STATE_DIR, scrapeText, sumMetric, readStackFile, type ToxiproxyClient } from '@flatline/stack';
import { spawnSync } from 'node:child_process';
import { duration } from './up.ts';
import { applyOnPlane, faultFile, PLANE_HOSTS, planeFaults, planeFor, planeOfScenario, type PlaneTarget } from './plane-faults.ts';
import { clusterToxiproxy, linksOf, portForwardHint, refusePerFlatOnCluster, tcpFaultOff, tcpFaultOn, tcpFaultsAllOff, tcpFaultStatus, tcpFaultTouched, type ClusterToxiproxy } from './tcp-fault.ts';

/** The options every cluster-aware subcommand takes. */
interface KubeOptions {
  stateDir: string;
  kube: boolean;
  namespace: string;
  kubectl: string;
  toxiproxyApi: string | undefined;
}

interface OnOptions extends KubeOptions {
  flats: string[];
  share: number | undefined;
  percent: number | undefined;
  delay: number | undefined;
  status: string | undefined;
  perFlat: Record<string, number> | undefined;
}

const list = (value: string, previous: string[] = []): string[] => [...previous, ...value.split(',').filter(Boolean)];

function percent(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 100) throw new InvalidArgumentError('expected a percentage from 0 to 100');
  return n;
}

/** The flats of the stack's credentials file chosen by a stable hash, share % of them (at least one). */
function shareOfFlats(stateDir: string, share: number): string[] {
  const file = join(stateDir, 'devices', 'credentials.json');
  if (!existsSync(file)) throw new Error(`--share needs the flat list of a stack: ${file} does not exist (start one with npm start)`);
  const ids = [...loadCredentials(file).keys()].sort((a, b) => stableFraction(`share:${a}`) - stableFraction(`share:${b}`));
  return ids.slice(0, Math.max(1, Math.round((ids.length * share) / 100)));
}

/** --per-flat 7=30s,13=5s: each flat's delay in ms. */
function perFlat(value: string, previous: Record<string, number> = {}): Record<string, number> {
  const out = { ...previous };
  for (const item of value.split(',').filter(Boolean)) {
    const m = /^([A-Za-z0-9_-]{1,64})=(.+)$/.exec(item);
    if (m === null) throw new InvalidArgumentError(`expected <flat>=<duration>, e.g. 7=30s, got ${JSON.stringify(item)}`);
    out[m[1]!] = duration(m[2]!);
  }
  return out;
}

/** Runs kubectl with input on stdin; throws with its stderr when it fails or is missing. */
function kubectl(bin: string, args: string[], input?: string): string {
  const res = spawnSync(bin, args, { input, encoding: 'utf8' });
  if (res.error) throw new Error(`cannot run ${bin}: ${res.error.message} (install kubectl, or pass --kubectl <path>)`);
  if (res.status !== 0) throw new Error(`${bin} ${args.join(' ')} failed: ${res.stderr.trim()}`);
  return res.stdout;
}

/** The fault VirtualServices on the cluster, read back into declarations. */
function clusterFaults(bin: string, namespace: string): Fault[] {
  const out = kubectl(bin, ['get', 'virtualservices.networking.istio.io', '-n', namespace, '-l', 'flatline.dev/route=fault', '-o', 'json']);
  return ((JSON.parse(out) as { items?: Array<Record<string, unknown>> }).items ?? []).flatMap((vs) => planOf(vs));
}

/** Applies objects with kubectl apply -f - (a List). */
function applyObjects(bin: string, objects: unknown[]): string {
  return kubectl(bin, ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));
}

/** The /metrics text of every process that injects local faults (the ingestion replicas). */
function injectorMetrics(stateDir: string): Promise<string[]> {
  const stack = readStackFile(stateDir);
  return Promise.all((stack?.ingestion ?? []).map((r) => (r.metrics ? scrapeText(r.metrics).catch(() => '') : Promise.resolve(''))));
}

/** What a host's xDS clients saw in the last minute: what their calls are, how many they made, how many the fault filter aborted, the slowest. */
interface PlaneSeen {
  readonly calls: string;
  readonly total: number;
  readonly aborted: number;
  readonly slowestSeconds: number;
}

/** What the host's xDS clients saw of the plane's faults in the last minute: calls aborted by the fault filter, the slowest call. */
async function planeTouched(stateDir: string, t: PlaneTarget): Promise<PlaneSeen> {
  if (t.host === 'query') {
    if (t.supervisor === undefined) throw new Error('the stack names no supervisor: its query calls are the only ones the plane acts on here');
    const { status, body } = await callSupervisor(t.supervisor, '/observed');
    if (status !== 200) throw new Error(`the supervisor's /observed answered ${status}: ${JSON.stringify(body)}`);
    const seen = (body as { query: { calls: number; abortedByFault: number; slowestSeconds: number } }).query;
    return { calls: "query call(s) of the supervisor's client", total: seen.calls, aborted: seen.abortedByFault, slowestSeconds: seen.slowestSeconds };
  }
  const texts = await injectorMetrics(stateDir);
  return {
    calls: 'Append(s)',
    total: texts.reduce((n, t) => n + sumMetric(t, 'flatline_ingestion_appends_last_minute'), 0),
    aborted: texts.reduce((n, t) => n + sumMetric(t, 'flatline_ingestion_appends_fault_aborted_last_minute'), 0),
    slowestSeconds: texts.reduce((m, t) => Math.max(m, sumMetric(t, 'flatline_ingestion_append_slowest_seconds_last_minute')), 0),
  };
}

/** Whether a fault on the plane acted in the last minute, and a line each for its abort and delay, from what the clients saw. */
function planeFaultActed(fault: Fault, seen: PlaneSeen): { acted: boolean; lines: string[] } {
  const lines: string[] = [];
  let acted = false;
  if (fault.fault.abort !== undefined) {
    lines.push(`${seen.aborted} ${seen.calls} aborted by the xDS fault filter in the last minute, of ${seen.total} made`);
    acted ||= seen.aborted > 0;
  }
  if (fault.fault.delay !== undefined) {
    const delayMs = durationMs(fault.fault.delay.fixedDelay);
    lines.push(`the slowest of the ${seen.calls} of the last minute took ${seen.slowestSeconds.toFixed(3)} s (the fault's delay: ${(delayMs / 1000).toFixed(3)} s)`);
    // Timers fire a little early or late; a delayed call lasts the delay and then some.
    acted ||= seen.slowestSeconds * 1000 >= delayMs * 0.95;
  }
  return { acted, lines };
}

function fail(message: string): void {
  process.stderr.write(`flatline fault: ${message}\n`);
  process.exitCode = 2;
}

/**
 * The Toxiproxy a TCP fault acts on: the local stack's, or with --kube the
 * cluster's at --toxiproxy-api (required: a default such as
 * http://127.0.0.1:8474 is also where the local stack's own API listens, and
 * would fault the wrong system). Throws saying what is missing.
 */
async function toxiproxyOf(name: string, o: KubeOptions): Promise<{ client: ToxiproxyClient; cluster: ClusterToxiproxy | undefined }> {
  if (!o.kube) return { client: linksOf(o.stateDir), cluster: undefined };
  if (o.toxiproxyApi === undefined) throw new Error(`${name} is a TCP fault: on a cluster give --toxiproxy-api <url> of its Toxiproxy API (e.g. http://127.0.0.1:8474); ${portForwardHint(o.namespace)}`);
  const cluster = await clusterToxiproxy(o.toxiproxyApi, o.namespace);
  return { client: cluster.client, cluster };
}

/** `fault on` of a TCP scenario: its toxics on the Toxiproxy links of the stack, or of the cluster with --kube. */
async function tcpOn(name: string, o: OnOptions): Promise<void> {
  try {
    const options = {
      ...(o.flats.length > 0 ? { flats: o.flats } : {}),
      ...(o.percent !== undefined ? { percent: o.percent } : {}),
      ...(o.delay !== undefined ? { delayMs: o.delay } : {}),
      ...(o.perFlat !== undefined ? { perFlat: o.perFlat } : {}),
    };
    if (o.kube) {
      if (o.share !== undefined) throw new Error(`${name} with --share gives each flat a proxy of its own, which only the local stack has: on a cluster turn it on for every flat`);
      refusePerFlatOnCluster(name, options);
    }
    const { client, cluster } = await toxiproxyOf(name, o);
    const lines = await tcpFaultOn(client, o.stateDir, name, options, cluster);
    for (const line of lines) process.stdout.write(`${line}\n`);
    recordEvent(o.stateDir, 'inject', name, `${lines.join('; ')}${o.kube ? ' (cluster)' : ''}`);
  } catch (err) {
    fail(err instanceof InvalidFaultError ? `invalid fault: ${err.message}` : (err as Error).message);
  }
}

/** `fault off` of a TCP scenario. */
async function tcpOff(name: string, o: KubeOptions): Promise<void> {
  try {
    const { client } = await toxiproxyOf(name, o);
    const removed = await tcpFaultOff(client, o.stateDir, name);
    process.stdout.write(removed > 0 ? `${name} off (${removed} toxic(s) removed)\n` : `${name} was not on\n`);
    if (removed > 0) recordEvent(o.stateDir, 'remove', name, o.kube ? 'cluster' : 'off');
  } catch (err) {
    fail((err as Error).message);
  }
}

/** --toxiproxy-api: the cluster's Toxiproxy for the TCP scenarios. */
const toxiproxyApiOption = [
  '--toxiproxy-api <url>',
  "with --kube, TCP scenarios: the cluster's Toxiproxy API (npm run synth -- --toxiproxy deploys it), " +
    'after kubectl -n <namespace> port-forward deploy/toxiproxy 8474: http://127.0.0.1:8474. Per-flat toxics (--flats, --share, --per-flat) are local only',
] as const;

/** The `fault` command and its subcommands. */
export function faultCommand(): Command {
  const cmd = new Command('fault').description('turn the fault scenarios of mesh/ on and off on the local stack (or a cluster: --kube), and see what they touched');
  const stateDir = (c: Command) =>
    c
      .option('--state-dir <dir>', 'state folder of the local stack', DEFAULT_STATE_DIR)
      .option('--kube', 'act on the cluster instead: apply the rendered Istio VirtualServices with kubectl; TCP scenarios: add toxics through --toxiproxy-api', false)
      .option('--namespace <ns>', 'namespace of flatline on the cluster (with --kube)', DEFAULT_MESH.namespace)
      .option('--kubectl <path>', 'kubectl to run (with --kube)', 'kubectl')
      .option(...toxiproxyApiOption);

  cmd
    .command('list')
    .description('list the fault scenarios')
    .action(() => {
      for (const s of SCENARIOS) process.stdout.write(`${s.name.padEnd(22)} ${s.description}\n`);
      for (const s of TCP_SCENARIOS) process.stdout.write(`${s.name.padEnd(22)} (TCP, Toxiproxy) ${s.description}\n`);
    });

  stateDir(
    cmd
      .command('on <scenario>')
      .description('turn a scenario on (replacing it if it is on already)')
      .option('--flats <ids>', 'flats to target, comma-separated (device scenarios)', list, [])
      .addOption(new Option('--share <percent>', 'target this share of the flats, chosen by a stable hash (device scenarios)').argParser(percent))
      .addOption(new Option('--percent <percent>', 'share of requests affected (default 100)').argParser(percent))
      .addOption(new Option('--delay <duration>', 'delay, e.g. 30s or 300ms').argParser(duration))
      .option('--status <code>', 'HTTP status (device scenarios) or gRPC status name (storage scenarios)')
      .addOption(new Option('--per-flat <flat=duration,...>', 'each flat its own delay, e.g. 7=30s,13=5s,21=12s (TCP device scenarios: devices-tcp-slow, devices-dribble)').argParser(perFlat)),
  ).action(async (name: string, o: OnOptions) => {
    if (tcpScenario(name) !== undefined) return tcpOn(name, o);
    const s = scenario(name);
    if (s === undefined) return fail(`no scenario ${JSON.stringify(name)}; see: flatline fault list`);
    try {
      const flats = o.share !== undefined ? shareOfFlats(o.stateDir, o.share) : o.flats;
      const fault = s.build({
        flats,
        ...(o.percent !== undefined ? { percent: o.percent } : {}),
        ...(o.delay !== undefined ? { delayMs: o.delay } : {}),
        ...(o.status !== undefined ? { status: /^\d+$/.test(o.status) ? Number(o.status) : o.status } : {}),
      });
      const plane = o.kube ? undefined : planeFor(o.stateDir, fault.host);
      if (o.kube) {
        // One VirtualService per host holds every fault on it: keep the others already on.
        const settings = { ...DEFAULT_MESH, namespace: o.namespace };
        const onHost = [...clusterFaults(o.kubectl, o.namespace).filter((f) => f.host === fault.host && f.name !== fault.name), fault];
        process.stdout.write(applyObjects(o.kubectl, [faultVirtualService(fault.host, onHost, settings).toJSON()]));
      } else if (plane !== undefined) {
        // The same VirtualService, through istiod: applied only once every client of the host it pushed to ACKed it.
        process.stdout.write(`${await applyOnPlane(plane, [...planeFaults(plane).filter((f) => f.name !== fault.name), fault])}\n`);
      } else {
        const file = faultFile(o.stateDir);
        writeFaultFile(file, [...readFaultFile(file).filter((f) => f.name !== fault.name), fault]);
      }
      const target = flats.length > 0 ? `flats ${flats.length > 10 ? `${flats.slice(0, 10).join(', ')}, … (${flats.length})` : flats.join(', ')}` : 'every request';
      process.stdout.write(`${fault.name} on (${target}): ${JSON.stringify(fault.fault)}\n`);
      recordEvent(o.stateDir, 'inject', fault.name, `${target}: ${JSON.stringify(fault.fault)}${o.kube ? ' (cluster)' : plane !== undefined ? ' (istiod)' : ''}`);
    } catch (err) {
      fail(err instanceof InvalidFaultError ? `invalid fault: ${err.message}` : (err as Error).message);
    }
  });

  stateDir(
    cmd
      .command('off [scenario]')
      .description('turn a scenario off, or every one with --all')
      .option('--all', 'turn every fault off', false),
  ).action(async (name: string | undefined, o: KubeOptions & { all: boolean }) => {
    if (name !== undefined && tcpScenario(name) !== undefined) return tcpOff(name, o);
    if (o.kube) {
      try {
        if (o.all && o.toxiproxyApi !== undefined) {
          // Every toxic of the cluster's Toxiproxy (its proxies stay: they come from its ConfigMap).
          await (await clusterToxiproxy(o.toxiproxyApi, o.namespace)).client.reset();
          process.stdout.write('every TCP fault off (Toxiproxy reset)\n');
        }
        const settings = { ...DEFAULT_MESH, namespace: o.namespace };
        if (!o.all && name === undefined) return fail('name a scenario, or use --all');
        const on = o.all ? [] : clusterFaults(o.kubectl, o.namespace);
        // Every host gets its baseline back, or a VirtualService with the faults that stay on.
        const objects = HOSTS.map((host) => {
          const keep = on.filter((f) => f.host === host && f.name !== name);
          return (keep.length > 0 ? faultVirtualService(host, keep, settings) : baselineVirtualService(host, settings)).toJSON();
        });
        process.stdout.write(applyObjects(o.kubectl, objects));
        recordEvent(o.stateDir, 'remove', o.all ? '*' : name!, 'cluster');
      } catch (err) {
        fail((err as Error).message);
      }
      return;
    }
    const file = faultFile(o.stateDir);
    if (o.all) {
      // Written whatever the file held, even a corrupt one: off --all always restores.
      writeFaultFile(file, []);
      // Then everything else, each tried even when one before it failed: what is left on is named.
      const left: string[] = [];
      for (const plane of PLANE_HOSTS.map((host) => planeFor(o.stateDir, host))) {
        if (plane === undefined || planeFaults(plane).length === 0) continue;
        try {
          process.stdout.write(`${await applyOnPlane(plane, [])}\n`);
        } catch (err) {
          left.push(`${plane.host}'s faults may still be on the Istio plane: ${(err as Error).message}`);
        }
      }
      // And every TCP fault, when the stack runs Toxiproxy (a stack without it has none to remove).
      if (readStackFile(o.stateDir)?.toxiproxy !== undefined) {
        try {
          await tcpFaultsAllOff(linksOf(o.stateDir), o.stateDir);
        } catch (err) {
          left.push(`the TCP faults may still be on: ${(err as Error).message}`);
        }
      }
      if (left.length > 0) return fail(`the fault file is reset, but ${left.join('; and ')}`);
      process.stdout.write('every fault off\n');
      recordEvent(o.stateDir, 'remove', '*', 'every fault off');
      return;
    }
    if (name === undefined) return fail('name a scenario, or use --all');
    const plane = planeOfScenario(o.stateDir, name);
    if (plane !== undefined) {
      try {
        const on = planeFaults(plane);
        if (!on.some((f) => f.name === name)) return void process.stdout.write(`${name} was not on\n`);
        process.stdout.write(`${await applyOnPlane(plane, on.filter((f) => f.name !== name))}\n${name} off\n`);
        recordEvent(o.stateDir, 'remove', name, 'off (istiod)');
      } catch (err) {
        fail((err as Error).message);
      }
      return;
    }
    try {
      const before = readFaultFile(file);
      writeFaultFile(file, before.filter((f) => f.name !== name));
      process.stdout.write(before.some((f) => f.name === name) ? `${name} off\n` : `${name} was not on\n`);
      if (before.some((f) => f.name === name)) recordEvent(o.stateDir, 'remove', name, 'off');
    } catch (err) {
      fail(`${(err as Error).message} (flatline fault off --all rewrites it)`);
    }
  });

  cmd
    .command('touched <scenario>')
    .description('print how many requests a fault delayed or aborted in the last minute (a TCP fault: its toxics and the bytes its links received since it went on); exit 1 when none (proof a fault took effect)')
    .option('--state-dir <dir>', 'state folder of the local stack', DEFAULT_STATE_DIR)
    .option('--kube', 'a TCP scenario on the cluster: ask the Toxiproxy at --toxiproxy-api', false)
    .option('--namespace <ns>', 'namespace of flatline on the cluster (with --kube)', DEFAULT_MESH.namespace)
    .option(...toxiproxyApiOption)
    .action(async (name: string, o: KubeOptions) => {
      if (tcpScenario(name) !== undefined) {
        try {
          const { client } = await toxiproxyOf(name, o);
          const { acted, lines } = await tcpFaultTouched(client, o.stateDir, name, o.kube);
          for (const line of lines) process.stdout.write(`${name} ${line}\n`);
          if (!acted) process.exitCode = 1;
        } catch (err) {
          fail((err as Error).message);
        }
        return;
      }
      if (o.kube) return fail("on a cluster the requests an Istio fault touched are Envoy's istio_requests_total with response_flags DI (delayed) or FI (aborted)");
      const plane = planeOfScenario(o.stateDir, name);
      const fault = plane === undefined ? undefined : planeFaults(plane).find((f) => f.name === name);
      if (plane !== undefined && fault === undefined) {
        process.stdout.write(`${name} is not on (no such fault in the plane's VirtualService of ${plane.host})\n`);
        process.exitCode = 1;
        return;
      }
      // storage and query on the plane: the xDS fault filter runs inside each client, and what they saw is the proof.
      // Device faults there are applied by ingestion's HTTP interceptor from istiod's routes: it counts them by name, as on the local plane (below).
      if (plane !== undefined && fault !== undefined && plane.host !== 'devices') {
        let seen: Awaited<ReturnType<typeof planeTouched>>;
        try {
          seen = await planeTouched(o.stateDir, plane);
        } catch (err) {
          return fail((err as Error).message);
        }
        const { acted, lines } = planeFaultActed(fault, seen);
        for (const line of lines) process.stdout.write(`${name} (istiod): ${line}\n`);
        if (!acted) process.exitCode = 1;
        return;
      }
      const texts = await injectorMetrics(o.stateDir);
      const n = texts.reduce((sum, t) => sum + sumMetric(t, 'flatline_fault_requests_last_minute', `fault="${name}"`), 0);
      process.stdout.write(`${name}: ${n} request(s) touched in the last minute\n`);
      if (n === 0) process.exitCode = 1;
    });

  stateDir(cmd.command('status').description('show each active fault and the requests it touched in the last minute').option('--json', 'print as JSON', false)).action(
    async (o: KubeOptions & { json: boolean }) => {
      if (o.kube) {
        try {
          const on = clusterFaults(o.kubectl, o.namespace);
          const tcp = o.toxiproxyApi === undefined ? [] : await tcpFaultStatus((await clusterToxiproxy(o.toxiproxyApi, o.namespace)).client);
          if (o.json) return void process.stdout.write(`${JSON.stringify([...on, ...tcp.map((t) => ({ name: t.toxic.name, link: t.link, toxic: t.toxic }))], null, 2)}\n`);
          for (const t of tcp) process.stdout.write(`TCP ${t.toxic.name.padEnd(40)} link ${t.link.padEnd(18)} ${t.toxic.type} ${t.toxic.stream} toxicity ${t.toxic.toxicity} ${JSON.stringify(t.toxic.attributes)}\n`);
          if (on.length === 0) return void process.stdout.write(`no fault VirtualService in namespace ${o.namespace}${o.toxiproxyApi === undefined ? ' (TCP faults: give --toxiproxy-api)' : ''}\n`);
          for (const f of on) process.stdout.write(`${f.name.padEnd(22)} ${f.host.padEnd(8)} ${JSON.stringify(f.fault)}\n`);
          process.stdout.write("requests touched: Envoy's istio_requests_total with response_flags DI (delayed) or FI (aborted)\n");
        } catch (err) {
          fail((err as Error).message);
        }
        return;
      }
      const faults = readFaultFile(faultFile(o.stateDir));
      const texts = await injectorMetrics(o.stateDir);
      const rows: Array<{ name: string; host: string; fault: Fault['fault']; matches: number; plane: 'local' | 'istiod'; delayedLastMinute: number | null; abortedLastMinute: number | null }> = faults.map((f) => ({
        name: f.name,
        host: f.host,
        fault: f.fault,
        matches: f.match.length,
        plane: 'local',
        delayedLastMinute: texts.reduce((n, t) => n + sumMetric(t, 'flatline_fault_requests_last_minute', `fault="${f.name}",action="delayed"`), 0),
        abortedLastMinute: texts.reduce((n, t) => n + sumMetric(t, 'flatline_fault_requests_last_minute', `fault="${f.name}",action="aborted"`), 0),
      }));
      for (const plane of PLANE_HOSTS.map((host) => planeFor(o.stateDir, host))) {
        const on = plane === undefined ? [] : planeFaults(plane);
        if (plane === undefined || on.length === 0) continue;
        // On the Istio plane the clients count aborts, not which fault made them; a delay shows only as slow calls.
        // What the clients saw may be unreadable: the faults are still shown, with no count, and the exit code says so.
        if (plane.host === 'devices') {
          // Applied by ingestion's HTTP interceptor from istiod's routes, which counts them by name as on the local plane.
          for (const f of on) {
            const count = (action: string): number => texts.reduce((n, t) => n + sumMetric(t, 'flatline_fault_requests_last_minute', `fault="${f.name}",action="${action}"`), 0);
            rows.push({ name: f.name, host: f.host, fault: f.fault, matches: f.match.length, plane: 'istiod', delayedLastMinute: count('delayed'), abortedLastMinute: count('aborted') });
          }
          continue;
        }
        const seen = await planeTouched(o.stateDir, plane).catch((err: unknown) => {
          fail(`cannot read what ${plane.host}'s clients saw: ${(err as Error).message}`);
          return undefined;
        });
        for (const f of on) rows.push({ name: f.name, host: f.host, fault: f.fault, matches: f.match.length, plane: 'istiod', delayedLastMinute: null, abortedLastMinute: f.fault.abort === undefined ? 0 : (seen?.aborted ?? null) });
      }
      let tcp: Awaited<ReturnType<typeof tcpFaultStatus>> = [];
      if (readStackFile(o.stateDir)?.toxiproxy !== undefined) {
        try {
          tcp = await tcpFaultStatus(linksOf(o.stateDir));
        } catch (err) {
          // The HTTP and gRPC faults are still shown; the exit code says something is missing.
          fail(`cannot read the TCP faults: ${(err as Error).message}`);
        }
      }
      if (o.json) return void process.stdout.write(`${JSON.stringify(tcp.length > 0 ? [...rows, ...tcp.map((t) => ({ name: t.toxic.name, link: t.link, toxic: t.toxic }))] : rows, null, 2)}\n`);
      for (const t of tcp) process.stdout.write(`TCP ${t.toxic.name.padEnd(40)} link ${t.link.padEnd(18)} ${t.toxic.type} ${t.toxic.stream} toxicity ${t.toxic.toxicity} ${JSON.stringify(t.toxic.attributes)}\n`);
      if (rows.length === 0) return void process.stdout.write(tcp.length === 0 ? 'no fault is on\n' : '');
      process.stdout.write(`${'fault'.padEnd(22)} ${'host'.padEnd(8)} ${'delayed/min'.padEnd(12)} ${'aborted/min'.padEnd(12)} declaration\n`);
      for (const r of rows) {
        process.stdout.write(
          `${r.name.padEnd(22)} ${r.host.padEnd(8)} ${String(r.delayedLastMinute ?? '-').padEnd(12)} ${String(r.abortedLastMinute ?? '-').padEnd(12)} ${JSON.stringify(r.fault)}${r.matches > 0 ? ` on ${r.matches} match(es)` : ''}${r.plane === 'istiod' ? ' (Istio plane: applied by istiod)' : ''}\n`,
        );
      }
    },
  );
  return cmd;
}
