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
 *
 * The stack supervises its processes as a kubelet does its containers: one
 * that exits on its own (a crash, a kill -9 from another terminal) is started
 * again on the same ports and state after a back-off that doubles in a crash
 * loop (crash-loop.ts), and nothing else stops. What was stopped on purpose
 * (a node drained or crashed, the stack stopping) stays stopped until
 * restored.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { DB_LINKS, DEFAULT_MESH, writeDeviceLinks, writeFaultFile, type Link } from '@flatline/mesh';
import { join } from 'node:path';
import { checkHealth, flatIds, loadCredentials, writeCredentials } from '@flatline/platform';
import { startDatabase, startService, type RunningDatabase, type RunningService } from './components.ts';
import { ensureIdIndexes, ensureReadingsSlotIndex, quietReadingsStatistics, readingGapsPostgres, startPostgres, type RunningPostgres } from './postgres.ts';
import type { Server } from 'node:http';
import { serveControl } from './control.ts';
import { clientObservations, expectedFlats, observedLastMinute, observingInterceptor, queryFaultInterceptor, queryFreshness } from './freshness-probe.ts';
import { heldIn, metricValue, seqGaps, type GapReport, type Held } from './probes.ts';
import { heldReadings, lastFetches } from '@flatline/ingestion';
import { freshnessReport } from '@flatline/query';
import type { StackFile } from './stack-file.ts';
import { stackStatus } from './status.ts';
import { serveProbes, type ProbeServer, type SupervisorProbes } from './supervisor-http.ts';
import type { NodeAction, NodeState } from './nodes.ts';
import { CrashLoop, DEFAULT_RESTART_POLICY, type RestartPolicy, type SupervisedStatus } from './crash-loop.ts';
import { recordEvent } from './events.ts';
import { freePort, haproxyAdminSocket, setServerState, startHaproxy, type Frontend } from './haproxy.ts';
import { planeTarget, syncPlane, type PlaneEndpoint, type PlaneService } from './istio-plane.ts';
import { startIstiod, XDS_BOOTSTRAP_OPTION, xdsBootstrap, type RunningIstiod } from './istiod.ts';
import { credentials as grpcCredentials } from '@grpc/grpc-js';
import { register as registerXds } from '@grpc/grpc-js-xds';
import { QueryServiceClient } from '@flatline/proto';
import type { ManagedProcess } from './processes.ts';
import { startToxiproxy, type RunningToxiproxy } from './toxiproxy.ts';

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
  /** The supervisor's read-only probes over HTTP (always on 127.0.0.1, whatever the host). */
  readonly supervisor: number;
  /** Toxiproxy's HTTP API (always on 127.0.0.1); its proxies, one per link, take free ports. */
  readonly toxiproxy: number;
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
  supervisor: 7100,
  toxiproxy: 8474,
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
  /** How a process that exits on its own is restarted (default DEFAULT_RESTART_POLICY). */
  readonly restart?: RestartPolicy;
  /**
   * Toxiproxy on every link a TCP fault may cut (each service's link to the
   * database, ingestion's to the devices and to storage), default true;
   * false connects them directly.
   */
  readonly links?: boolean;
  /** Each Node service writes a V8 CPU profile (node --cpu-prof) into this folder when it stops; undefined: none. */
  readonly cpuProfileDir?: string;
  /**
   * The mesh plane: 'local' (this library's default, what most tests run),
   * the in-process fault injectors only; 'istio' (DEFAULT_STACK_MESH, what
   * `flatline up` and `chaos run` start) also runs istiod
   * (tools/install-istiod.sh) with the plane's objects
   * (stack/src/istio-plane.ts) for proxyless xDS clients.
   */
  readonly mesh?: StackMesh;
  /**
   * FerretDB's backend (default DEFAULT_STACK_DB): 'postgresql', a
   * PostgreSQL 15 cluster in <state>/postgresql that the stack starts and
   * supervises (stack/src/postgres.ts), where query reads ListMeasurements
   * slot by slot from a GIN index (FLATLINE_QUERY_SLOT_READS=1) and storage
   * keeps readings one document per fetch result and minute
   * (FLATLINE_STORAGE_FETCH_DOCUMENTS=1); or
   * 'sqlite', files in <state>/ferretdb, where a range is a scan.
   */
  readonly db?: StackDb;
  /**
   * With --mesh istio or two nodes or more, how often each storage and
   * query replica's gRPC health is checked (default READINESS.periodMs): one
   * that answers anything but SERVING twice in a row leaves the plane's
   * endpoints and HAProxy's rotation until it answers SERVING again, as a
   * pod that fails its readinessProbe leaves its Service's endpoints.
   */
  readonly readinessPeriodMs?: number;
}

/**
 * The readiness of the plane's replicas, as the cluster's readinessProbe
 * (cdk8s/src/services-chart.ts grpcReadiness: a gRPC health check, timeout
 * 2 s, failure threshold 2, success threshold 1), checked every second
 * here as HAProxy checks the replicas on the local plane.
 */
export const READINESS = { periodMs: 1000, timeoutMs: 2000, failureThreshold: 2 } as const;

/** The mesh planes (StackOptions.mesh). */
export const STACK_MESHES = ['istio', 'local'] as const;
export type StackMesh = (typeof STACK_MESHES)[number];
/**
 * The plane `flatline up` (npm start), `chaos run` and `chaos campaign` start
 * unless told `--mesh local`: Istio's control plane, so that a fault on a
 * gRPC hop is a VirtualService istiod translates and the clients' xDS fault
 * filter applies, as in a proxyless mesh on a cluster.
 */
export const DEFAULT_STACK_MESH: StackMesh = 'istio';

/** FerretDB's backends (StackOptions.db). */
export const STACK_DBS = ['sqlite', 'postgresql'] as const;
export type StackDb = (typeof STACK_DBS)[number];
/**
 * The backend a stack gets unless told otherwise: PostgreSQL, measured better
 * end to end (bench --only range-reads: pages of 100 at a day of history in
 * milliseconds instead of tens of seconds; inserts 1.4–1.8x; 1,000 flats
 * fresher).
 */
export const DEFAULT_STACK_DB: StackDb = 'postgresql';

/**
 * The backend of a stack in stateDir when none is asked for: SQLite when the
 * folder holds FerretDB's SQLite files and no PostgreSQL cluster (a stack
 * of an earlier release, whose readings a switch would leave behind),
 * otherwise DEFAULT_STACK_DB.
 */
export function dbOfStateDir(stateDir: string): StackDb {
  const sqlite = join(stateDir, 'ferretdb');
  const hasSqlite = existsSync(sqlite) && readdirSync(sqlite).some((f) => f.endsWith('.sqlite'));
  return hasSqlite && !existsSync(join(stateDir, 'postgresql', 'data', 'PG_VERSION')) ? 'sqlite' : DEFAULT_STACK_DB;
}

const at = (host: string, port: number): string => `${host}:${port}`;
const plus = (port: number, i: number): number => (port === 0 ? 0 : port + i);
const portOf = (address: string): number => Number(address.slice(address.lastIndexOf(':') + 1));

/** The name of local node i: node-a, node-b, … */
export function nodeName(i: number): string {
  return `node-${String.fromCharCode(97 + i)}`;
}


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

/** What onStarted hears of: a component that came up (also after a restart). */
export type StartedComponent = RunningService | RunningDatabase | { process: ManagedProcess };

/** A running local stack. */
export class LocalStack {
  db!: RunningDatabase;
  devices!: RunningService;
  haproxy: ManagedProcess | undefined;
  /** istiod, with --mesh istio. */
  istiod: RunningIstiod | undefined;
  /** istiod's xDS and HTTP ports, fixed at its first start: a restarted istiod listens there again, so the clients' bootstrap stays right. */
  private istiodPorts: { grpc: number; http: number } | undefined;
  /** The supervisor's xDS client of query (planeQuery), and what the plane's faults did to its calls. */
  private planeQueryClient: QueryServiceClient | undefined;
  private readonly planeQueryObserved = clientObservations();
  /** Storage and query replicas out of the plane's endpoints: their health check failed READINESS.failureThreshold times in a row. */
  private readonly unready = new Set<string>();
  /** Failed health checks in a row, per replica. */
  private readonly failedChecks = new Map<string, number>();
  private readinessTimer: NodeJS.Timeout | undefined;
  /** What HAProxy's runtime API was last told of each storage and query replica (absent: ready, as it starts). */
  private readonly balancerStates = new Map<string, 'ready' | 'maint'>();
  /** Toxiproxy, in front of every link (undefined with links: false). */
  toxiproxy: RunningToxiproxy | undefined;
  /** Where each link's proxy listens, fixed at its first start: a restarted Toxiproxy listens there again, so the clients' addresses stay right. */
  private readonly linkListen = new Map<Link, string>();
  private toxiproxyPort = 0;
  /** Ingestion replica i (undefined while it is down: its node down, or waiting to be restarted). */
  readonly ingestion: Array<RunningService | undefined> = [];
  private readonly replicas: Replica[] = [];
  private readonly nodeStates = new Map<string, NodeState>();
  private frontends: { storage: string; query: string } | undefined;
  private balancer: Frontend[] | undefined;
  private dbPort = 0;
  /** PostgreSQL under FerretDB (db: 'postgresql'), and its port, the same across restarts. */
  private postgres: RunningPostgres | undefined;
  private postgresPort = 0;
  /** The simulator's ports once it first listened (https, control, metrics): a restart takes the same. */
  private devicesPorts: { https: number; control: number; metrics: number } | undefined;
  private control: Server | undefined;
  private probeServer: ProbeServer | undefined;
  /** Set once every component has started: stack.json says so, and `flatline status` waits for it. */
  private started = false;
  /** Set by stop(): nothing is restarted any more, and what starts meanwhile is stopped. */
  private stopping = false;
  private stopped: Promise<void> | undefined;
  /** Restart bookkeeping per process name. */
  private readonly loops = new Map<string, CrashLoop>();
  /** Restarts waiting out their back-off, per process name. */
  private readonly pending = new Map<string, NodeJS.Timeout>();
  /** Starts under way (first starts and restarts), per process name: stop() and node actions wait for them. */
  private readonly starting = new Map<string, Promise<unknown>>();

  /** FerretDB's backend in this stack: StackOptions.db, else what its state folder holds (dbOfStateDir). */
  readonly dbBackend: StackDb;

  private constructor(
    readonly options: StackOptions,
    private readonly onStarted: (name: string, component: StartedComponent) => void,
  ) {
    this.dbBackend = options.db ?? dbOfStateDir(options.stateDir);
  }

  /** Folder of logs. */
  get logs(): string {
    return join(this.options.stateDir, 'logs');
  }

  /** The local plane's fault file (flatline fault on/off writes it). */
  get faultsFile(): string {
    return join(this.options.stateDir, 'faults.json');
  }

  /** The local plane's per-flat device links (flatline fault on <TCP scenario> --flats writes it). */
  get deviceLinksFile(): string {
    return join(this.options.stateDir, 'device-links.json');
  }

  /** The credentials file the simulator and ingestion share. */
  get credentialsFile(): string {
    return join(this.options.stateDir, 'devices', 'credentials.json');
  }

  /** The stable address of storage (the balancer with nodes, else the one replica). */
  get storageAddress(): string {
    // Without a balancer: the one replica's address, the same across its restarts.
    return this.frontends?.storage ?? at(this.options.host, this.replicaOf('storage', 0).grpcPort);
  }

  /** The stable address of query (the balancer with nodes, else the one replica). */
  get queryAddress(): string {
    return this.frontends?.query ?? at(this.options.host, this.replicaOf('query', 0).grpcPort);
  }

  /** Running replicas of storage or query. */
  running(service: 'storage' | 'query'): RunningService[] {
    return this.replicas.filter((r) => r.service === service && r.running !== undefined).map((r) => r.running!);
  }

  /** The node names and where each stands. */
  nodes(): Array<{ name: string; state: NodeState; replicas: string[] }> {
    return [...this.nodeStates].map(([name, state]) => ({ name, state, replicas: this.replicas.filter((r) => r.node === name).map((r) => r.name) }));
  }

  /** Every process the stack started and has not replaced, for stopping (in start order: ingestion, behind the balancer, last). */
  processes(): ManagedProcess[] {
    const of = (ingestion: boolean) => this.replicas.filter((r) => (r.service === 'ingestion') === ingestion).map((r) => r.running?.process);
    return [this.postgres?.process, this.db?.process, this.toxiproxy?.process, this.devices?.process, ...of(false), this.haproxy, this.istiod?.process, ...of(true)].filter((p): p is ManagedProcess => p !== undefined);
  }

  private replicaOf(service: ReplicaService, index: number): Replica {
    const r = this.replicas.find((x) => x.service === service && x.index === index);
    if (r === undefined) throw new Error(`no ${service} replica ${index}`);
    return r;
  }

  /**
   * Starts every component in dependency order; onStarted hears of each as
   * it comes up (also of each restart: after a crash, or when a node is
   * restored). On failure, stops whatever started and throws.
   */
  static async start(options: StackOptions, onStarted: (name: string, component: StartedComponent) => void = () => {}): Promise<LocalStack> {
    const stack = LocalStack.create(options, onStarted);
    await stack.run();
    return stack;
  }

  /**
   * A stack not started yet: run() starts it. For a caller that must be able
   * to stop() it while it starts (Ctrl-C during `flatline up`).
   */
  static create(options: StackOptions, onStarted: (name: string, component: StartedComponent) => void = () => {}): LocalStack {
    return new LocalStack(options, onStarted);
  }

  /** Starts every component (see start()); on failure stops whatever started and throws. */
  async run(): Promise<void> {
    try {
      await this.startAll();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** What the supervisor knows of each process: state, pid, restarts, last exit. */
  supervised(): SupervisedStatus[] {
    return [...this.loops.values()].map((l) => l.status());
  }

  private say(line: string): void {
    this.options.say?.(line);
  }

  private loopOf(name: string): CrashLoop {
    let loop = this.loops.get(name);
    if (loop === undefined) {
      loop = new CrashLoop(name, this.options.restart ?? DEFAULT_RESTART_POLICY);
      this.loops.set(name, loop);
    }
    return loop;
  }

  /**
   * Runs start (the first start or a restart of the process name) as the
   * one start of that name under way; once it is up, stops it again if the
   * stack began stopping meanwhile.
   */
  private async track<T extends StartedComponent>(name: string, start: () => Promise<T>): Promise<T> {
    const attempt = start();
    this.starting.set(name, attempt);
    try {
      const component = await attempt;
      if (this.stopping) {
        component.process.expected = true;
        await component.process.stop();
        throw new Error(`${name}: the stack is stopping`);
      }
      return component;
    } finally {
      if (this.starting.get(name) === attempt) this.starting.delete(name);
    }
  }

  /**
   * Watches a process that just became ready: when it exits and nobody meant
   * it to (not stopped by the stack, nor by a node action), restart runs
   * after the crash loop's back-off; unless hold() says it must stay down
   * for now (its node is frozen: the restore starts it).
   */
  private supervise(name: string, p: ManagedProcess, restart: () => Promise<unknown>, hold: () => boolean = () => false, onExit: () => void = () => {}): void {
    const loop = this.loopOf(name);
    loop.ready(p.pid);
    void p.exited.then((code) => {
      onExit();
      if (this.stopping || p.expected || hold()) {
        loop.stopped(this.stopping || p.expected ? undefined : code);
        if (!this.stopping && !p.expected) this.say(`${name} exited (${code}) while its node is down: it starts again when the node is restored`);
      } else {
        const delayMs = loop.crashed(code);
        this.say(`${name} exited unexpectedly (${code}); restarting it in ${(delayMs / 1000).toFixed(1)} s (restart ${loop.status().restarts + 1}); its log: ${p.logFile}`);
        this.scheduleRestart(name, delayMs, restart, hold);
      }
      if (!this.stopping) this.writeStackFile();
    });
  }

  /**
   * Starts name again after delayMs, and again with a longer back-off for as
   * long as its start fails; not while hold() (its node went down meanwhile).
   */
  private scheduleRestart(name: string, delayMs: number, restart: () => Promise<unknown>, hold: () => boolean = () => false): void {
    clearTimeout(this.pending.get(name));
    const loop = this.loopOf(name);
    const timer = setTimeout(() => {
      this.pending.delete(name);
      if (this.stopping) return;
      if (hold()) {
        loop.stopped();
        this.writeStackFile();
        return;
      }
      loop.restarting();
      this.writeStackFile();
      restart().then(
        () => this.say(`${name} restarted (pid ${loop.status().pid}, restart ${loop.status().restarts})`),
        (err: Error) => {
          if (this.stopping) return;
          const why = err.message.split('\n')[0];
          if (hold()) {
            loop.stopped(`start failed: ${why}`);
          } else {
            const next = loop.crashed(`start failed: ${why}`);
            this.say(`${name} did not start again (${why}); next try in ${(next / 1000).toFixed(1)} s`);
            this.scheduleRestart(name, next, restart, hold);
          }
          this.writeStackFile();
        },
      );
    }, delayMs);
    this.pending.set(name, timer);
  }

  /** Cancels a restart waiting out its back-off; returns whether there was one. */
  private cancelRestart(name: string): boolean {
    const timer = this.pending.get(name);
    if (timer === undefined) return false;
    clearTimeout(timer);
    this.pending.delete(name);
    this.loopOf(name).stopped();
    return true;
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
    // First, so that its address is in stack.json from the first write (status answers while the stack starts) and a taken port fails before anything starts.
    this.probeServer = await serveProbes(this.probes(), options.ports.supervisor);
    say(`supervisor probes on ${this.probeServer.url} (GET /freshness, /fetched, /gaps, /drained, /status)`);
    this.ensureCredentials(say);
    // The local plane's fault file exists from the start (no fault), so what follows it and what checks it never meet an absent file.
    if (!existsSync(this.faultsFile)) writeFaultFile(this.faultsFile, []);
    // Per-flat proxies live in Toxiproxy, which starts afresh: no flat keeps a link to a proxy that is gone.
    writeDeviceLinks(this.deviceLinksFile, {});
    this.plan();

    if (this.dbBackend === 'postgresql') {
      say(`starting postgresql (cluster in ${this.postgresDir})…`);
      await this.startPostgresql();
      say('starting ferretdb on postgresql…');
      await this.startDb(options.ports.db);
      const index = await ensureReadingsSlotIndex(this.db!.uri, this.postgres!.url);
      say(`slot index ${index.index} on ${index.table}${index.created ? ' built' : ' already there'}`);
      const ids = await ensureIdIndexes(this.db!.uri, this.postgres!.url);
      say(`_id lookup indexes: ${ids.filter((i) => i.created).length} built, ${ids.filter((i) => !i.created).length} already there`);
    } else {
      if (options.db === undefined) say(`FerretDB stays on SQLite: ${join(options.stateDir, 'ferretdb')} holds this stack's readings (--db postgresql starts afresh on PostgreSQL)`);
      say(`starting ferretdb (state in ${join(options.stateDir, 'ferretdb')})…`);
      await this.startDb(options.ports.db);
    }
    if (options.links ?? true) {
      say('starting toxiproxy in front of every service\'s database link…');
      await this.startLinks();
    }

    const front = this.replicas.filter((r) => r.service !== 'ingestion');
    say(`starting the device simulator, ${front.map((r) => r.name).join(', ')}…`);
    const results = await Promise.allSettled([this.startDevices(), ...front.map((r) => this.startReplica(r))]);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    // Storage has made its indexes of the readings now: their expressions get no statistics either (quietStatistics).
    if (this.dbBackend === 'postgresql') await quietReadingsStatistics(this.db!.uri, this.postgres!.url);

    if (this.nodeStates.size >= 2) {
      const storage = at(options.host, options.ports.storage || (await freePort(options.host)));
      const query = at(options.host, options.ports.query || (await freePort(options.host)));
      say(`starting haproxy (storage ${storage}, query ${query}) in front of ${this.nodeStates.size} nodes…`);
      this.balancer = (['storage', 'query'] as const).map((service) => ({
        name: service,
        listen: service === 'storage' ? storage : query,
        servers: this.replicas.filter((r) => r.service === service).map((r) => ({ name: r.name, address: at(options.host, r.grpcPort) })),
      }));
      this.frontends = { storage, query };
      await this.startBalancer();
    }

    if (options.mesh === 'istio') {
      say(`starting istiod (Istio's control plane; config in ${this.istioConfigDir}) for proxyless xDS clients…`);
      await this.startIstiod();
    }
    if (this.balancer !== undefined || options.mesh === 'istio') this.startReadinessChecks();

    if (this.toxiproxy !== undefined) {
      say('adding the links ingestion → devices and ingestion → storage to toxiproxy…');
      await this.populateLinks();
    }
    const ingestion = this.replicas.filter((r) => r.service === 'ingestion');
    say(`starting ${ingestion.length} ingestion replica(s)…`);
    for (const r of ingestion) await this.startReplica(r);
    this.control = await serveControl(this.controlSocket, this);
    this.started = true;
    this.writeStackFile();
  }

  /**
   * The holes in each device's sequence among the stored readings (those
   * taken since since, if given), not counting what held says an outbox
   * holds. On PostgreSQL, PostgreSQL finds them itself (FerretDB v1 would
   * sort every reading in its own memory: ~20x slower at 14,000 readings).
   * A database that hangs mid-read (frozen) ends the read after 30 s.
   */
  storedGaps(since?: Date, held?: Held): Promise<GapReport> {
    if (this.db === undefined) return Promise.reject(new Error('the database has not started yet'));
    if (this.postgres !== undefined) return readingGapsPostgres(this.postgres.url, new URL(this.db.uri).pathname.slice(1), since, held, 30000);
    return seqGaps(`${this.db.uri}?connectTimeoutMS=5000&socketTimeoutMS=30000`, since, held);
  }

  /** The supervisor's read-only probes (http://127.0.0.1:<port>), once it serves them. */
  get supervisorUrl(): string | undefined {
    return this.probeServer?.url;
  }

  /** What the probe server asks: this stack's query, database, outboxes and components. */
  private probes(): SupervisorProbes {
    return {
      freshness: (request) => {
        // Every flat the stack polls when none is named, so a flat never fetched counts (the credentials file, read now: it may have changed).
        const flatIds = request.flatIds.length > 0 ? request.flatIds : (expectedFlats(this.credentialsFile) ?? []);
        // The supervisor is a client of query here: the local plane applies query faults (query-slow) to it, as a sidecar would.
        // On the Istio plane it dials query through istiod (the replicas its ServiceEntry lists, the DestinationRule's
        // outlier detection), whose routes carry query's faults: it records what they did to its calls.
        const plane = this.planeQuery();
        if (plane !== undefined) return queryFreshness(plane, { ...request, flatIds }, [observingInterceptor(this.planeQueryObserved)]);
        return queryFreshness(this.queryAddress, { ...request, flatIds }, [queryFaultInterceptor(this.faultsFile)]);
      },
      fetched: async (request) => {
        const flatIds = request.flatIds.length > 0 ? request.flatIds : (expectedFlats(this.credentialsFile) ?? []);
        // A flat that moved between replicas was last fetched by whichever fetched it last.
        const last = new Map<string, number>();
        for (const file of this.outboxFiles()) {
          let seen: Map<string, number>;
          try {
            seen = lastFetches(file);
          } catch {
            continue; // unreadable: its flats look as stale as the other replicas say
          }
          for (const [flat, ms] of seen) last.set(flat, Math.max(ms, last.get(flat) ?? ms));
        }
        const fetches = [...last].map(([flatId, ms]) => ({ flatId, at: new Date(ms) }));
        return freshnessReport(fetches, { flatIds: flatIds.length > 0 ? flatIds : undefined, exclude: new Set(request.excludeFlatIds), limit: request.limit }, new Date());
      },
      gaps: async (since) => {
        // A reading still in an outbox is on its way, not lost (outboxes send fresh fetches first).
        const first = await this.storedGaps(since, this.heldReadings());
        if (first.gaps.length === 0) return first;
        // A row recorded after that view of the outboxes, then stored and acknowledged while the read
        // passed its device, was in neither: a real gap is there again with what the outboxes hold now.
        return this.storedGaps(since, this.heldReadings());
      },
      outbox: async () => {
        // A replica that is down (its node, or waiting to restart) is not asked; one that runs but does not answer may hold anything.
        const replicas = this.replicas.filter((r) => r.service === 'ingestion' && r.running !== undefined);
        const sizes = await Promise.all(replicas.map((r) => metricValue(r.running!.metrics, 'flatline_ingestion_outbox_fetches').catch(() => undefined)));
        return {
          waiting: sizes.reduce((a: number, b) => a + (b ?? 0), 0),
          unanswered: replicas.filter((_, i) => sizes[i] === undefined).map((r) => r.name),
        };
      },
      status: async () => {
        const file = this.stackFile();
        if (file === undefined) throw new Error('the stack is still starting: no database or simulator yet');
        return { rows: await stackStatus(file), started: this.started };
      },
      observed: () => ({ query: observedLastMinute(this.planeQueryObserved) }),
    };
  }

  /** What every ingestion replica's outbox holds now (read-only; a missing or unreadable outbox holds nothing). */
  private heldReadings(): Held {
    const all = this.outboxFiles().flatMap((file) => {
      try {
        return heldReadings(file);
      } catch {
        return [];
      }
    });
    return heldIn(all);
  }

  /** Every ingestion replica's outbox file, whether the replica runs or not. */
  private outboxFiles(): string[] {
    return this.replicas.filter((r) => r.service === 'ingestion').map((r) => join(this.options.stateDir, 'ingestion', r.name, 'outbox.sqlite'));
  }

  /** The Unix socket `flatline node` talks to (in a folder of its own, made private). */
  get controlSocket(): string {
    return join(this.options.stateDir, 'control', 'control.sock');
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

  /** postgres://… of the PostgreSQL under FerretDB (db: 'postgresql'), for psql. */
  get postgresqlUrl(): string | undefined {
    return this.postgres?.url;
  }

  /** PostgreSQL's cluster folder (db: 'postgresql'). */
  get postgresDir(): string {
    return join(this.options.stateDir, 'postgresql', 'data');
  }

  /** Starts (or restarts, on the same port and cluster) PostgreSQL, supervised (db: 'postgresql'). */
  private async startPostgresql(): Promise<void> {
    this.cancelRestart('postgres');
    const pg = await this.track('postgres', () =>
      startPostgres({
        dataDir: this.postgresDir,
        host: '127.0.0.1',
        port: this.postgresPort,
        logFile: join(this.logs, 'postgres.log'),
        detached: this.options.detached ?? false,
      }),
    );
    this.postgres = pg;
    this.postgresPort = pg.port;
    this.supervise('postgres', pg.process, () => this.startPostgresql());
    this.onStarted('postgres', pg);
    if (this.started) this.writeStackFile();
  }

  /** Starts (or restarts, on the same port and files) FerretDB, supervised. */
  async startDb(port = this.dbPort): Promise<void> {
    this.cancelRestart('ferretdb');
    const db = await this.track('ferretdb', () =>
      startDatabase({
        listen: at(this.options.host, port),
        stateDir: join(this.options.stateDir, 'ferretdb'),
        postgresqlUrl: this.postgres?.url,
        logFile: join(this.logs, 'ferretdb.log'),
        detached: this.options.detached ?? false,
      }),
    );
    this.db = db;
    this.dbPort = portOf(db.address);
    this.supervise('ferretdb', db.process, () => this.startDb());
    this.onStarted('ferretdb', db);
    if (this.started) this.writeStackFile();
  }

  /** Starts (or restarts, with the same configuration) HAProxy, supervised. */
  private async startBalancer(): Promise<void> {
    const frontends = this.balancer!;
    const started = await this.track('haproxy', async () => ({
      process: await startHaproxy({ stateDir: this.options.stateDir, logFile: join(this.logs, 'haproxy.log'), detached: this.options.detached ?? false, frontends }),
    }));
    this.haproxy = started.process;
    // A new HAProxy starts with every server in rotation: it hears again which replicas are not ready.
    this.balancerStates.clear();
    await this.syncBalancerReadiness();
    this.supervise('haproxy', started.process, () => this.startBalancer());
    this.onStarted('haproxy', started);
    if (this.started) this.writeStackFile();
  }

  /** istiod's config folder (with --mesh istio). */
  get istioConfigDir(): string {
    return join(this.options.stateDir, 'istio', 'config');
  }

  /** The xDS bootstrap file a proxyless client of this stack's istiod uses (GRPC_XDS_BOOTSTRAP), with --mesh istio. */
  get xdsBootstrapFile(): string {
    return join(this.options.stateDir, 'istio', 'xds-bootstrap.json');
  }

  /** Starts (or restarts, on the same ports) istiod, supervised, after writing the plane's objects. */
  private async startIstiod(): Promise<void> {
    this.syncIstioPlane();
    const host = this.options.host;
    const started = await this.track('istiod', () =>
      startIstiod({
        configDir: this.istioConfigDir,
        host,
        grpcPort: this.istiodPorts?.grpc ?? 0,
        httpPort: this.istiodPorts?.http ?? 0,
        logFile: join(this.logs, 'istiod.log'),
        detached: this.options.detached ?? false,
        // A change of the folder reaches the clients in ~0.1 s instead of ~0.25 s.
        env: { PILOT_DEBOUNCE_AFTER: '10ms' },
      }),
    );
    this.istiod = started;
    this.istiodPorts ??= { grpc: portOf(started.xdsAddress), http: portOf(new URL(started.debugUrl).host) };
    this.writeXdsBootstrap(this.xdsBootstrapFile, 'flatline-cli');
    this.supervise('istiod', started.process, () => this.startIstiod());
    this.onStarted('istiod', started);
    if (this.started) this.writeStackFile();
  }

  /**
   * With --mesh istio, the supervisor's own client of query: a proxyless xDS
   * client of istiod (workload flatline-supervisor), made once and kept, so
   * that it keeps its routes and endpoints between probes (a new xDS client
   * would ask istiod for all of them at every probe, and hang while istiod is
   * away). Its bootstrap is per channel: the supervisor may run in a process
   * (a test's) with other stacks and their istiods.
   */
  private planeQuery(): QueryServiceClient | undefined {
    if (this.options.mesh !== 'istio' || this.istiod === undefined || this.stopping) return undefined;
    if (this.planeQueryClient === undefined) {
      registerXds();
      const bootstrap = JSON.stringify(xdsBootstrap({ xdsAddress: this.istiod.xdsAddress, namespace: DEFAULT_MESH.namespace, workload: 'flatline-supervisor' }));
      this.planeQueryClient = new QueryServiceClient(planeTarget('query'), grpcCredentials.createInsecure(), { [XDS_BOOTSTRAP_OPTION]: bootstrap });
    }
    return this.planeQueryClient;
  }

  /**
   * Checks the health of every running storage and query replica each
   * READINESS period: the Istio plane lists only the ready ones, and HAProxy
   * (the stable addresses of a stack of two nodes or more) takes the others
   * out of its rotation through its runtime API, as a cluster's endpoints
   * list only pods that pass their readinessProbe. (A replica NOT_SERVING,
   * its database out of reach, kept its share of the calls before: in a
   * campaign one flapped for 50 s after every fault healed. HAProxy's own
   * check cannot tell: the body of a health answer starts with zero bytes,
   * where its string and regex matches end.)
   */
  private startReadinessChecks(): void {
    let busy = false;
    this.readinessTimer = setInterval(() => {
      if (busy || this.stopping) return;
      busy = true;
      void this.checkReadiness().finally(() => {
        busy = false;
      });
    }, this.options.readinessPeriodMs ?? READINESS.periodMs);
    this.readinessTimer.unref();
  }

  private async checkReadiness(): Promise<void> {
    const checked = this.replicas.filter((r) => (r.service === 'storage' || r.service === 'query') && r.running !== undefined && this.nodeStates.get(r.node) === 'ready');
    const answers = await Promise.all(checked.map(async (r) => [r, await checkHealth(at(this.options.host, r.grpcPort), '', READINESS.timeoutMs)] as const));
    if (this.stopping) return;
    let changed = false;
    for (const [r, health] of answers) {
      if (health === 'SERVING') {
        this.failedChecks.delete(r.name);
        if (this.unready.delete(r.name)) {
          changed = true;
          this.say(`${r.name} answers SERVING again: back in ${this.rotations()}`);
        }
        continue;
      }
      const failed = (this.failedChecks.get(r.name) ?? 0) + 1;
      this.failedChecks.set(r.name, failed);
      if (failed >= READINESS.failureThreshold && !this.unready.has(r.name)) {
        this.unready.add(r.name);
        changed = true;
        this.say(`${r.name} not ready (${health}, ${failed} checks in a row): out of ${this.rotations()} until it answers SERVING`);
      }
    }
    if (changed) this.syncIstioPlane();
    // Every period, not only on a change: a runtime call that failed (HAProxy restarting) is tried again.
    await this.syncBalancerReadiness();
  }

  /** Where readiness takes a replica out of: the Istio plane's endpoints, HAProxy's rotation. */
  private rotations(): string {
    return [this.options.mesh === 'istio' ? "the Istio plane's endpoints" : '', this.balancer !== undefined ? "HAProxy's rotation" : ''].filter(Boolean).join(' and ');
  }

  /** Puts each storage and query replica in HAProxy's rotation, or takes it out, as its readiness says (what HAProxy has not been told yet). */
  private async syncBalancerReadiness(): Promise<void> {
    if (this.balancer === undefined || this.haproxy === undefined || this.stopping) return;
    for (const r of this.replicas) {
      if (r.service !== 'storage' && r.service !== 'query') continue;
      const state = this.unready.has(r.name) ? 'maint' : 'ready';
      if ((this.balancerStates.get(r.name) ?? 'ready') === state) continue;
      try {
        await setServerState(haproxyAdminSocket(this.options.stateDir), r.service, r.name, state);
        this.balancerStates.set(r.name, state);
      } catch (err) {
        // HAProxy restarting: the next check, or startBalancer, tells it again.
        this.say(`haproxy: cannot set ${r.name} ${state}: ${(err as Error).message}`);
      }
    }
  }

  /** The replicas of storage and query that take calls now (node ready, process up, ready by its health checks), as the plane's ServiceEntries list them. */
  private planeEndpoints(): Record<PlaneService, PlaneEndpoint[]> {
    const of = (service: PlaneService) =>
      this.replicas
        .filter((r) => r.service === service && r.running !== undefined && this.nodeStates.get(r.node) === 'ready' && !this.unready.has(r.name))
        .map((r) => ({ replica: r.name, node: r.node, address: at(this.options.host, r.grpcPort) }));
    return { storage: of('storage'), query: of('query') };
  }

  /** Rewrites the plane's objects whose content changed (with --mesh istio; every state change calls it). */
  private syncIstioPlane(): void {
    if (this.options.mesh !== 'istio' || this.stopping) return;
    try {
      syncPlane(this.istioConfigDir, this.planeEndpoints(), DEFAULT_MESH, this.devices?.addresses['https']);
    } catch (err) {
      this.say(`istiod config: cannot write the plane's objects: ${(err as Error).message}`);
    }
  }

  /**
   * Starts (or restarts, on the same API port) Toxiproxy, supervised, and
   * creates its proxies again: a restart loses them, and with them any TCP
   * fault that was on.
   */
  private async startLinks(): Promise<void> {
    const started = await this.track('toxiproxy', async () => {
      const running = await startToxiproxy({
        logFile: join(this.logs, 'toxiproxy.log'),
        port: this.toxiproxyPort || this.options.ports.toxiproxy,
        detached: this.options.detached ?? false,
      });
      return running;
    });
    this.toxiproxy = started;
    this.toxiproxyPort = portOf(started.address);
    this.supervise('toxiproxy', started.process, () => this.startLinks());
    await this.populateLinks();
    // A restarted Toxiproxy has no per-flat proxies: their flats go back to the gateway's link.
    if (this.started) writeDeviceLinks(this.deviceLinksFile, {});
    this.onStarted('toxiproxy', started);
    if (this.started) this.writeStackFile();
  }

  /** The upstream of each link whose server has started (the database first; the simulator and storage once they run). */
  private linkUpstreams(): Array<[Link, string]> {
    const out: Array<[Link, string]> = DB_LINKS.map((l) => [l, this.db.address]);
    if (this.devices !== undefined) out.push(['ingestion-devices', this.devices.addresses['https'] ?? '']);
    if (this.replicas.some((r) => r.service === 'storage' && r.grpcPort !== 0)) out.push(['ingestion-storage', this.storageAddress]);
    return out;
  }

  /** Creates the proxy of every link that has an upstream (again, on the same ports, after a restart). */
  private async populateLinks(): Promise<void> {
    const toxiproxy = this.toxiproxy!;
    const specs = this.linkUpstreams().map(([name, upstream]) => ({ name, upstream, listen: this.linkListen.get(name) ?? '127.0.0.1:0' }));
    const proxies = await toxiproxy.client.populate(specs);
    for (const p of proxies) this.linkListen.set(p.name as Link, p.listen);
  }

  /** Where a client of link connects: its proxy, or the server itself without Toxiproxy. */
  private viaLink(link: Link, direct: string): string {
    return this.linkListen.get(link) ?? direct;
  }

  private common(service: ReplicaService): Record<string, string> {
    const database = this.viaLink(`${service}-db`, this.db.address);
    return { FLATLINE_MONGODB_URI: `mongodb://${database}/flatline`, FLATLINE_LOG_LEVEL: this.options.logLevel };
  }

  /** Starts (or restarts, on the same ports and state folder) the device simulator, supervised. */
  private async startDevices(): Promise<RunningService> {
    const { host } = this.options;
    const ports = this.devicesPorts ?? { https: this.options.ports.devices, control: this.options.ports.devicesControl, metrics: this.options.ports.devicesMetrics };
    const devices = await this.track('devices', () =>
      startService({
        service: 'devices',
        env: {
          FLATLINE_LOG_LEVEL: this.options.logLevel,
          FLATLINE_DEVICES_LISTEN: at(host, ports.https),
          FLATLINE_DEVICES_CONTROL_LISTEN: at('127.0.0.1', ports.control),
          FLATLINE_DEVICES_METRICS_LISTEN: at(host, ports.metrics),
          FLATLINE_DEVICES_STATE_DIR: join(this.options.stateDir, 'devices'),
          FLATLINE_DEVICES_CREDENTIALS: this.credentialsFile,
          ...this.options.env?.devices,
        },
        logFile: join(this.logs, 'devices.log'),
        detached: this.options.detached ?? false,
        cpuProfileDir: this.options.cpuProfileDir,
      }),
    );
    this.devices = devices;
    this.devicesPorts = { https: portOf(devices.addresses['https'] ?? ''), control: portOf(devices.addresses['control'] ?? ''), metrics: portOf(devices.metrics) };
    this.supervise('devices', devices.process, () => this.startDevices());
    this.onStarted('devices', devices);
    if (this.started) this.writeStackFile();
    return devices;
  }

  private envOf(r: Replica): Record<string, string> {
    const { host } = this.options;
    const upper = r.service.toUpperCase();
    const own = {
      ...this.common(r.service),
      [`FLATLINE_${upper}_LISTEN`]: at(host, r.grpcPort),
      [`FLATLINE_${upper}_METRICS_LISTEN`]: at(host, r.metricsPort),
    };
    // On PostgreSQL a slot is one index lookup (ensureReadingsSlotIndex); on SQLite a scan, slower than the range read.
    // There storage keeps a fetch result's readings of a minute in one document, which only slot reads see (FetchDoc).
    const pg = this.dbBackend === 'postgresql';
    const slots: Record<string, string> = pg && r.service === 'query' ? { FLATLINE_QUERY_SLOT_READS: '1' } : pg && r.service === 'storage' ? { FLATLINE_STORAGE_FETCH_DOCUMENTS: '1' } : {};
    if (r.service !== 'ingestion') return { ...own, ...slots, ...this.options.env?.[r.service] };
    return {
      ...own,
      FLATLINE_INGESTION_ID: r.name,
      // With the ordinal in the name, each replica's fallback share while the lease database is away.
      FLATLINE_INGESTION_REPLICAS: String(this.options.replicas),
      FLATLINE_INGESTION_STATE_DIR: join(this.options.stateDir, 'ingestion', r.name),
      FLATLINE_DEVICES_URL: `https://${this.viaLink('ingestion-devices', this.devices.addresses['https'] ?? '')}`,
      FLATLINE_DEVICES_CA: join(this.options.stateDir, 'devices', 'ca.pem'),
      FLATLINE_DEVICES_CREDENTIALS: this.credentialsFile,
      ...this.storageDial(r),
      FLATLINE_FAULTS_FILE: this.faultsFile,
      FLATLINE_DEVICE_LINKS_FILE: this.deviceLinksFile,
      FLATLINE_POLL_INTERVAL_MS: String(this.options.intervalMs),
      FLATLINE_POLL_TIMEOUT_MS: String(Math.min(2000, Math.floor(this.options.intervalMs * 0.6))),
      ...this.options.env?.ingestion,
    };
  }

  /**
   * How an ingestion replica reaches storage: through its Toxiproxy link to
   * the balancer; with --mesh istio, as a proxyless xDS client of istiod
   * (its own bootstrap, so istiod tells the replicas apart), straight to the
   * replicas the ServiceEntry lists: storage-link-reset (a Toxiproxy fault)
   * does not act on that path. On the plane it also asks istiod for the
   * devices host's routes as a sidecar of its own (workload
   * <replica>-sidecar, so syncz tells its two clients apart), and takes the
   * device faults from them instead of the fault file.
   */
  private storageDial(r: Replica): Record<string, string> {
    if (this.options.mesh !== 'istio' || this.istiod === undefined) return { FLATLINE_STORAGE_ADDR: this.viaLink('ingestion-storage', this.storageAddress) };
    const file = join(this.options.stateDir, 'istio', `${r.name}-bootstrap.json`);
    this.writeXdsBootstrap(file, r.name);
    const sidecar = join(this.options.stateDir, 'istio', `${r.name}-sidecar-bootstrap.json`);
    this.writeXdsBootstrap(sidecar, `${r.name}-sidecar`);
    return { FLATLINE_STORAGE_ADDR: planeTarget('storage'), GRPC_XDS_BOOTSTRAP: file, FLATLINE_DEVICES_XDS_BOOTSTRAP: sidecar };
  }

  /** Writes the xDS bootstrap of a proxyless client of this stack's istiod, known to it as workload. */
  private writeXdsBootstrap(file: string, workload: string): void {
    writeFileSync(file, `${JSON.stringify(xdsBootstrap({ xdsAddress: this.istiod!.xdsAddress, namespace: DEFAULT_MESH.namespace, workload }), null, 2)}\n`);
  }

  /** Starts (or restarts, on the same ports and outbox) a replica, supervised; env is kept for its restarts. */
  private async startReplica(r: Replica, env: Record<string, string> = {}): Promise<RunningService> {
    this.cancelRestart(r.name);
    const running = await this.track(r.name, () =>
      startService({ service: r.service, name: r.name, env: { ...this.envOf(r), ...env }, logFile: join(this.logs, `${r.name}.log`), detached: this.options.detached ?? false, cpuProfileDir: this.options.cpuProfileDir }),
    );
    r.running = running;
    // A new process is ready when it says so (startService waited for it); its checks count from there.
    this.failedChecks.delete(r.name);
    if (this.unready.delete(r.name)) void this.syncBalancerReadiness();
    r.grpcPort = portOf(running.grpc);
    r.metricsPort = portOf(running.metrics);
    if (r.service === 'ingestion') this.ingestion[r.index] = running;
    this.supervise(
      r.name,
      running.process,
      () => this.startReplica(r, env),
      // A replica of a node that is not ready (frozen) stays down with it: the restore starts it.
      () => this.nodeStates.get(r.node) !== 'ready',
      () => {
        if (r.running !== running) return;
        r.running = undefined;
        if (r.service === 'ingestion') this.ingestion[r.index] = undefined;
      },
    );
    this.onStarted(r.name, running);
    if (this.devices !== undefined && this.replicas.every((x) => x.service === 'ingestion' || x.running !== undefined)) this.writeStackFile();
    return running;
  }

  /**
   * Starts (or restarts, on the same ports and outbox) ingestion replica i,
   * with extra environment; one waiting to be restarted starts now. Throws
   * when it runs already.
   */
  async startIngestion(i: number, env: Record<string, string> = {}): Promise<RunningService> {
    const { ports } = this.options;
    let r = this.replicas.find((x) => x.service === 'ingestion' && x.index === i);
    if (r === undefined) {
      // One more replica than planned (a test's intruder): on the nodes round-robin like the others.
      r = { name: `ingestion-${i}`, service: 'ingestion', index: i, node: nodeName(i % this.nodeStates.size), grpcPort: plus(ports.ingestion, i), metricsPort: plus(ports.ingestionMetrics, i) };
      this.replicas.push(r);
    }
    await this.starting.get(r.name)?.catch(() => {});
    if (r.running !== undefined) throw new Error(`${r.name} runs already (pid ${r.running.process.pid})`);
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
      if (state !== 'ready') {
        for (const r of members) r.running?.process.signal('SIGCONT');
        // Whatever is not running (drained, crashed, or died while frozen) starts again: storage and query before ingestion.
        this.nodeStates.set(name, 'ready');
        const down = members.filter((m) => m.running === undefined && !this.starting.has(m.name));
        for (const r of [...down.filter((m) => m.service !== 'ingestion'), ...down.filter((m) => m.service === 'ingestion')]) {
          await this.startReplica(r).catch((err: Error) => {
            // Handed to the supervisor: it tries again with back-off, as after a crash.
            const delayMs = this.loopOf(r.name).crashed(`start failed: ${err.message.split('\n')[0]}`);
            this.scheduleRestart(r.name, delayMs, () => this.startReplica(r), () => this.nodeStates.get(r.node) !== 'ready');
          });
        }
        recordEvent(this.options.stateDir, 'remove', name, `restored (was ${state})`);
        this.say(`${name} restored (was ${state})`);
      }
    } else {
      if (state !== 'ready') throw new Error(`${name} is ${state}: restore it first`);
      // What waits to be restarted stays down with the node; a start under way is let finish, then fails with the rest.
      for (const r of members) this.cancelRestart(r.name);
      await Promise.allSettled(members.map((r) => this.starting.get(r.name)));
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
          }),
        );
        this.nodeStates.set(name, action === 'drain' ? 'drained' : 'crashed');
      }
      recordEvent(this.options.stateDir, 'inject', name, `${action}: ${members.map((r) => r.name).join(', ') || 'no replicas'}`);
      this.say(`${name} ${action === 'freeze' ? 'frozen' : action === 'drain' ? 'drained' : 'crashed'} on request: its replicas stay down until flatline node restore ${name}`);
    }
    this.writeStackFile();
    return this.nodeStates.get(name)!;
  }

  /** What stack.json says of the stack now; undefined before the database and the simulator have started. */
  stackFile(): StackFile | undefined {
    if (this.db === undefined || this.devices === undefined) return undefined;
    const metricsOf = (service: 'storage' | 'query'): string[] => this.running(service).map((r) => r.metrics);
    return {
      query: this.queryAddress,
      storage: this.storageAddress,
      // The simulator's ready line names both (startService's convention: '' for an address not named).
      devices: this.devices.addresses['https'] ?? '',
      devicesControl: this.devices.addresses['control'] ?? '',
      database: this.db.address,
      databasePid: this.db.process.running ? this.db.process.pid : undefined,
      // Array.from: a replica index never started (a hole) is an entry too, not a null.
      ingestion: Array.from(this.ingestion, (r) => ({ grpc: r?.grpc, metrics: r?.metrics })),
      metrics: { storage: metricsOf('storage')[0], query: metricsOf('query')[0], devices: this.devices.metrics },
      replicas: this.replicas.map((r) => ({ name: r.name, node: r.node, pid: r.running?.process.pid, grpc: at(this.options.host, r.grpcPort), metrics: at(this.options.host, r.metricsPort) })),
      nodes: Object.fromEntries(this.nodeStates),
      components: this.supervised(),
      control: this.controlSocket,
      supervisor: this.probeServer?.url,
      toxiproxy: this.toxiproxy === undefined ? undefined : { api: `http://${this.toxiproxy.address}`, links: Object.fromEntries(this.linkListen) },
      istiod: this.istiod === undefined ? undefined : { xds: this.istiod.xdsAddress, debug: this.istiod.debugUrl, config: this.istioConfigDir, bootstrap: this.xdsBootstrapFile },
      postgresql: this.postgres === undefined ? undefined : { url: this.postgres.url },
      started: this.started,
      pid: process.pid,
    };
  }

  /** Writes <state>/stack.json: the addresses `flatline status`, `freshness`, `fault` and `node` read. */
  writeStackFile(): void {
    // Every change of a replica or a node passes here: the plane's endpoints follow.
    this.syncIstioPlane();
    const file = this.stackFile();
    if (file === undefined) return;
    // Atomically (rename): it is rewritten on every restart while other commands read it.
    const path = join(this.options.stateDir, 'stack.json');
    writeFileSync(`${path}.tmp`, JSON.stringify(file, null, 1));
    renameSync(`${path}.tmp`, path);
  }

  /**
   * Stops everything, ingestion first (so it drains), the database last:
   * no restart from now on; a start under way is let finish and stopped
   * (so nothing is left running). Calling it again waits for the same stop.
   */
  stop(onStopped: (name: string, how: number | string) => void = () => {}): Promise<void> {
    this.stopped ??= (async () => {
      this.stopping = true;
      for (const timer of this.pending.values()) clearTimeout(timer);
      this.pending.clear();
      clearInterval(this.readinessTimer);
      this.control?.close();
      await this.probeServer?.close();
      this.planeQueryClient?.close();
      await Promise.allSettled(this.starting.values());
      for (const p of [...this.processes()].reverse()) onStopped(p.name, await p.stop());
    })();
    return this.stopped;
  }
}
