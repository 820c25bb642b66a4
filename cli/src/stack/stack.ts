/**
 * The local stack: FerretDB, the device simulator, storage, query and the
 * ingestion replicas on this machine, with all state under one folder.
 * `flatline up` runs it in the foreground; tests start it on free ports.
 *
 * With two or more nodes, storage, query and ingestion run as replicas spread
 * round-robin over named local nodes (node-a, node-b, …: groups of processes
 * that fail together, as a VM's pods do) and HAProxy gives storage and query
 * one stable address each, as a Kubernetes Service does. The database and the
 * device simulator stand outside the nodes: the database cluster and the flats.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { flatIds, loadCredentials, writeCredentials } from '@flatline/platform/credentials.js';
import { startDatabase, startService, type RunningDatabase, type RunningService } from './components.ts';
import type { Server } from 'node:http';
import { serveControl } from './control.ts';
import { recordEvent } from './events.ts';
import { freePort, startHaproxy } from './haproxy.ts';
import type { ManagedProcess } from './processes.ts';

/** Ports of the components; 0 picks a free one. */
export interface StackPorts {
  readonly db: number;
  readonly storage: number;
  readonly query: number;
  readonly devices: number;
  readonly devicesControl: number;
  /** gRPC (health) port of ingestion replica 0; replica i gets ingestion + i (0 stays 0). */
  readonly ingestion: number;
  /** Metrics ports: storage, query, devices, and ingestion replica 0 (+ i). */
  readonly storageMetrics: number;
  readonly queryMetrics: number;
  readonly devicesMetrics: number;
  readonly ingestionMetrics: number;
}

/** The documented default ports of `flatline up`. */
export const DEFAULT_PORTS: StackPorts = {
  db: 27117,
  storage: 7101,
  query: 7102,
  devices: 8443,
  devicesControl: 8444,
  ingestion: 7110,
  storageMetrics: 9101,
  queryMetrics: 9102,
  devicesMetrics: 9104,
  ingestionMetrics: 9110,
};

/** Every port 0: for tests. */
export const FREE_PORTS: StackPorts = Object.fromEntries(Object.keys(DEFAULT_PORTS).map((k) => [k, 0])) as unknown as StackPorts;

/** How to run the stack. */
export interface StackOptions {
  readonly stateDir: string;
  readonly host: string;
  readonly ports: StackPorts;
  readonly flats: number;
  readonly intervalMs: number;
  /** Ingestion replicas; with nodes ≥ 2 also the replicas of storage and of query. */
  readonly replicas: number;
  /** Local nodes (default 1: one storage, one query, no balancer). */
  readonly nodes?: number;
  readonly logLevel: string;
  /** Extra environment per component (storage, query, devices, ingestion), for tests and experiments. */
  readonly env?: Partial<Record<'storage' | 'query' | 'devices' | 'ingestion', Record<string, string>>>;
  /** Progress lines. */
  readonly say?: (line: string) => void;
  /** Every process in its own process group, out of reach of the terminal's Ctrl-C (the caller stops them). */
  readonly detached?: boolean;
}

const at = (host: string, port: number): string => `${host}:${port}`;
const plus = (port: number, i: number): number => (port === 0 ? 0 : port + i);
const portOf = (address: string): number => Number(address.slice(address.lastIndexOf(':') + 1));

/** The name of local node i: node-a, node-b, … */
export function nodeName(i: number): string {
  return `node-${String.fromCharCode(97 + i)}`;
}

/** What a node can go through, as a VM would. */
export type NodeAction = 'drain' | 'crash' | 'freeze' | 'restore';
/** Where a node stands. */
export type NodeState = 'ready' | 'drained' | 'crashed' | 'frozen';

type ReplicaService = 'storage' | 'query' | 'ingestion';

/** One replica of a service, on a node; its ports stay the same across restarts (a VM that comes back). */
interface Replica {
  readonly name: string;
  readonly service: ReplicaService;
  readonly index: number;
  readonly node: string;
  grpcPort: number;
  metricsPort: number;
  running?: RunningService;
}

/** A running local stack. */
export class LocalStack {
  db!: RunningDatabase;
  devices!: RunningService;
  haproxy: ManagedProcess | undefined;
  /** Ingestion replica i (undefined while its node is down). */
  readonly ingestion: Array<RunningService | undefined> = [];
  private readonly replicas: Replica[] = [];
  private readonly nodeStates = new Map<string, NodeState>();
  private frontends: { storage: string; query: string } | undefined;
  private dbPort = 0;
  private control: Server | undefined;
  /** Set once every component has started: stack.json says so, and `flatline status` waits for it. */
  private started = false;
  private onStarted: (name: string, service: RunningService | RunningDatabase | { process: ManagedProcess }) => void = () => {};

  private constructor(readonly options: StackOptions) {}

  /** Folder of logs. */
  get logs(): string {
    return join(this.options.stateDir, 'logs');
  }

  /** The local plane's fault file (flatline fault on/off writes it). */
  get faultsFile(): string {
    return join(this.options.stateDir, 'faults.json');
  }

  /** The credentials file the simulator and ingestion share. */
  get credentialsFile(): string {
    return join(this.options.stateDir, 'devices', 'credentials.json');
  }

  /** The stable address of storage (the balancer with nodes, else the one replica). */
  get storageAddress(): string {
    return this.frontends?.storage ?? this.replicaOf('storage', 0).running!.grpc;
  }

  /** The stable address of query (the balancer with nodes, else the one replica). */
  get queryAddress(): string {
    return this.frontends?.query ?? this.replicaOf('query', 0).running!.grpc;
  }

  /** Running replicas of storage or query. */
  running(service: 'storage' | 'query'): RunningService[] {
    return this.replicas.filter((r) => r.service === service && r.running !== undefined).map((r) => r.running!);
  }

  /** The node names and where each stands. */
  nodes(): Array<{ name: string; state: NodeState; replicas: string[] }> {
    return [...this.nodeStates].map(([name, state]) => ({ name, state, replicas: this.replicas.filter((r) => r.node === name).map((r) => r.name) }));
  }

  /** Every running process, for supervision (in start order). */
  processes(): ManagedProcess[] {
    return [this.db?.process, this.devices?.process, ...this.replicas.map((r) => r.running?.process), this.haproxy].filter((p): p is ManagedProcess => p !== undefined);
  }

  private replicaOf(service: ReplicaService, index: number): Replica {
    const r = this.replicas.find((x) => x.service === service && x.index === index);
    if (r === undefined) throw new Error(`no ${service} replica ${index}`);
    return r;
  }

  /**
   * Starts every component in dependency order; onStarted hears of each as
   * it comes up (also of replicas restarted when a node is restored). On
   * failure, stops whatever started and throws.
   */
  static async start(
    options: StackOptions,
    onStarted: (name: string, service: RunningService | RunningDatabase | { process: ManagedProcess }) => void = () => {},
  ): Promise<LocalStack> {
    const stack = new LocalStack(options);
    stack.onStarted = onStarted;
    try {
      await stack.startAll();
      return stack;
    } catch (err) {
      await stack.stop();
      throw err;
    }
  }

  private plan(): void {
    const { ports, replicas } = this.options;
    const nodes = Math.max(1, this.options.nodes ?? 1);
    for (let n = 0; n < nodes; n++) this.nodeStates.set(nodeName(n), 'ready');
    const balanced = nodes >= 2;
    for (const service of ['storage', 'query'] as const) {
      const count = balanced ? replicas : 1;
      for (let i = 0; i < count; i++) {
        this.replicas.push({
          name: balanced ? `${service}-${i}` : service,
          service,
          index: i,
          node: nodeName(i % nodes),
          // Behind the balancer the replicas take free ports; the documented ports are the balancer's.
          grpcPort: balanced ? 0 : ports[service],
          metricsPort: balanced ? 0 : service === 'storage' ? ports.storageMetrics : ports.queryMetrics,
        });
      }
    }
    for (let i = 0; i < replicas; i++) {
      this.replicas.push({ name: `ingestion-${i}`, service: 'ingestion', index: i, node: nodeName(i % nodes), grpcPort: plus(ports.ingestion, i), metricsPort: plus(ports.ingestionMetrics, i) });
    }
  }

  private async startAll(): Promise<void> {
    const options = this.options;
    const say = options.say ?? (() => {});
    mkdirSync(this.logs, { recursive: true });
    this.ensureCredentials(say);
    this.plan();

    say(`starting ferretdb (state in ${join(options.stateDir, 'ferretdb')})…`);
    await this.startDb(options.ports.db);
    this.onStarted('ferretdb', this.db);

    const front = this.replicas.filter((r) => r.service !== 'ingestion');
    say(`starting the device simulator, ${front.map((r) => r.name).join(', ')}…`);
    const results = await Promise.allSettled([this.startDevices(), ...front.map((r) => this.startReplica(r))]);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;

    if (this.nodeStates.size >= 2) {
      const storage = at(options.host, options.ports.storage || (await freePort(options.host)));
      const query = at(options.host, options.ports.query || (await freePort(options.host)));
      say(`starting haproxy (storage ${storage}, query ${query}) in front of ${this.nodeStates.size} nodes…`);
      this.haproxy = await startHaproxy({
        stateDir: options.stateDir,
        logFile: join(this.logs, 'haproxy.log'),
        detached: options.detached ?? false,
        frontends: (['storage', 'query'] as const).map((service) => ({
          name: service,
          listen: service === 'storage' ? storage : query,
          servers: this.replicas.filter((r) => r.service === service).map((r) => ({ name: r.name, address: at(options.host, r.grpcPort) })),
        })),
      });
      this.frontends = { storage, query };
      this.onStarted('haproxy', { process: this.haproxy });
    }

    const ingestion = this.replicas.filter((r) => r.service === 'ingestion');
    say(`starting ${ingestion.length} ingestion replica(s)…`);
    for (const r of ingestion) await this.startReplica(r);
    this.control = await serveControl(this.controlSocket, this);
    this.started = true;
    this.writeStackFile();
  }

  /** The Unix socket `flatline node` talks to. */
  get controlSocket(): string {
    return join(this.options.stateDir, 'control.sock');
  }

  private ensureCredentials(say: (line: string) => void): void {
    mkdirSync(join(this.options.stateDir, 'devices'), { recursive: true });
    const want = flatIds(this.options.flats);
    if (existsSync(this.credentialsFile)) {
      try {
        const have = loadCredentials(this.credentialsFile);
        if (have.size === want.length && want.every((id) => have.has(id))) return;
      } catch {
        // Unreadable: write a new one below.
      }
    }
    writeCredentials(this.credentialsFile, want);
    say(`wrote device credentials for ${want.length} flats to ${this.credentialsFile}`);
  }

  /** Starts (or restarts, on the same port) FerretDB. */
  async startDb(port = this.dbPort): Promise<void> {
    this.db = await startDatabase({
      listen: at(this.options.host, port),
      stateDir: join(this.options.stateDir, 'ferretdb'),
      logFile: join(this.logs, 'ferretdb.log'),
      detached: this.options.detached ?? false,
    });
    this.dbPort = portOf(this.db.address);
  }

  private common(): Record<string, string> {
    return { FLATLINE_MONGODB_URI: this.db.uri, FLATLINE_LOG_LEVEL: this.options.logLevel };
  }

  private async startDevices(): Promise<RunningService> {
    const { host, ports } = this.options;
    this.devices = await startService({
      service: 'devices',
      env: {
        FLATLINE_LOG_LEVEL: this.options.logLevel,
        FLATLINE_DEVICES_LISTEN: at(host, ports.devices),
        FLATLINE_DEVICES_CONTROL_LISTEN: at('127.0.0.1', ports.devicesControl),
        FLATLINE_DEVICES_METRICS_LISTEN: at(host, ports.devicesMetrics),
        FLATLINE_DEVICES_STATE_DIR: join(this.options.stateDir, 'devices'),
        FLATLINE_DEVICES_CREDENTIALS: this.credentialsFile,
        ...this.options.env?.devices,
      },
      logFile: join(this.logs, 'devices.log'),
      detached: this.options.detached ?? false,
    });
    this.onStarted('devices', this.devices);
    return this.devices;
  }

  private envOf(r: Replica): Record<string, string> {
    const { host } = this.options;
    const upper = r.service.toUpperCase();
    const own = {
      ...this.common(),
      [`FLATLINE_${upper}_LISTEN`]: at(host, r.grpcPort),
      [`FLATLINE_${upper}_METRICS_LISTEN`]: at(host, r.metricsPort),
    };
    if (r.service !== 'ingestion') return { ...own, ...this.options.env?.[r.service] };
    return {
      ...own,
      FLATLINE_INGESTION_ID: r.name,
      FLATLINE_INGESTION_STATE_DIR: join(this.options.stateDir, 'ingestion', r.name),
      FLATLINE_DEVICES_URL: `https://${this.devices.addresses['https']}`,
      FLATLINE_DEVICES_CA: join(this.options.stateDir, 'devices', 'ca.pem'),
      FLATLINE_DEVICES_CREDENTIALS: this.credentialsFile,
      FLATLINE_STORAGE_ADDR: this.storageAddress,
      FLATLINE_FAULTS_FILE: this.faultsFile,
      FLATLINE_POLL_INTERVAL_MS: String(this.options.intervalMs),
      FLATLINE_POLL_TIMEOUT_MS: String(Math.min(2000, Math.floor(this.options.intervalMs * 0.6))),
      ...this.options.env?.ingestion,
    };
  }

  private async startReplica(r: Replica, env: Record<string, string> = {}): Promise<RunningService> {
    const running = await startService({ service: r.service, name: r.name, env: { ...this.envOf(r), ...env }, logFile: join(this.logs, `${r.name}.log`), detached: this.options.detached ?? false });
    r.running = running;
    r.grpcPort = portOf(running.grpc);
    r.metricsPort = portOf(running.metrics);
    if (r.service === 'ingestion') this.ingestion[r.index] = running;
    this.onStarted(r.name, running);
    if (this.devices !== undefined && this.replicas.every((x) => x.service === 'ingestion' || x.running !== undefined)) this.writeStackFile();
    return running;
  }

  /** Starts (or restarts, on the same ports and outbox) ingestion replica i, with extra environment. */
  async startIngestion(i: number, env: Record<string, string> = {}): Promise<RunningService> {
    const { ports } = this.options;
    let r = this.replicas.find((x) => x.service === 'ingestion' && x.index === i);
    if (r === undefined) {
      // One more replica than planned (a test's intruder): on the nodes round-robin like the others.
      r = { name: `ingestion-${i}`, service: 'ingestion', index: i, node: nodeName(i % this.nodeStates.size), grpcPort: plus(ports.ingestion, i), metricsPort: plus(ports.ingestionMetrics, i) };
      this.replicas.push(r);
    }
    return this.startReplica(r, env);
  }

  /**
   * Makes node name go through action, as a VM would: drain (SIGTERM, each
   * replica shuts down gracefully and its peers on other nodes take over),
   * crash (SIGKILL), freeze (SIGSTOP: hung, its connections stay open, nothing
   * answers) or restore (SIGCONT a frozen node; restart a drained or crashed
   * one on the same ports and outboxes). restore of a ready node does nothing,
   * so rollbacks can always call it. Returns the node's state after.
   */
  async nodeAction(name: string, action: NodeAction): Promise<NodeState> {
    const state = this.nodeStates.get(name);
    if (state === undefined) throw new Error(`no node ${name} (nodes: ${[...this.nodeStates.keys()].join(', ')})`);
    const members = this.replicas.filter((r) => r.node === name);
    if (action === 'restore') {
      if (state === 'frozen') for (const r of members) r.running?.process.signal('SIGCONT');
      if (state === 'drained' || state === 'crashed') {
        for (const r of members.filter((m) => m.service !== 'ingestion')) await this.startReplica(r);
        for (const r of members.filter((m) => m.service === 'ingestion')) await this.startReplica(r);
      }
      this.nodeStates.set(name, 'ready');
      if (state !== 'ready') recordEvent(this.options.stateDir, 'remove', name, `restored (was ${state})`);
    } else {
      if (state !== 'ready') throw new Error(`${name} is ${state}: restore it first`);
      if (action === 'freeze') {
        for (const r of members) r.running?.process.signal('SIGSTOP');
        this.nodeStates.set(name, 'frozen');
      } else {
        await Promise.all(
          members.map(async (r) => {
            const p = r.running?.process;
            if (p === undefined) return;
            p.expected = true;
            if (action === 'drain') await p.stop();
            else {
              p.signal('SIGKILL');
              await p.exited;
            }
            r.running = undefined;
            if (r.service === 'ingestion') this.ingestion[r.index] = undefined;
          }),
        );
        this.nodeStates.set(name, action === 'drain' ? 'drained' : 'crashed');
      }
      recordEvent(this.options.stateDir, 'inject', name, `${action}: ${members.map((r) => r.name).join(', ') || 'no replicas'}`);
    }
    this.writeStackFile();
    return this.nodeStates.get(name)!;
  }

  /** Writes <state>/stack.json: the addresses `flatline status`, `freshness`, `fault` and `node` read. */
  writeStackFile(): void {
    const metricsOf = (service: 'storage' | 'query'): string[] => this.running(service).map((r) => r.metrics);
    const file = {
      query: this.queryAddress,
      storage: this.storageAddress,
      devices: this.devices.addresses['https'],
      devicesControl: this.devices.addresses['control'],
      database: this.db.address,
      databasePid: this.db.process.pid,
      ingestion: this.ingestion.map((r) => ({ grpc: r?.grpc, metrics: r?.metrics })),
      metrics: { storage: metricsOf('storage')[0], query: metricsOf('query')[0], devices: this.devices.metrics },
      replicas: this.replicas.map((r) => ({ name: r.name, node: r.node, pid: r.running?.process.pid, grpc: at(this.options.host, r.grpcPort), metrics: at(this.options.host, r.metricsPort) })),
      nodes: Object.fromEntries(this.nodeStates),
      control: this.controlSocket,
      started: this.started,
      pid: process.pid,
    };
    writeFileSync(join(this.options.stateDir, 'stack.json'), JSON.stringify(file, null, 1));
  }

  /** Stops everything, ingestion first (so it drains), the database last. */
  async stop(onStopped: (name: string, how: number | string) => void = () => {}): Promise<void> {
    this.control?.close();
    for (const p of [...this.processes()].reverse()) onStopped(p.name, await p.stop());
  }
}
