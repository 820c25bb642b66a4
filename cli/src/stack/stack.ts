/**
 * The local stack: FerretDB, the device simulator, storage, query and N
 * ingestion replicas on this machine, with all state under one folder.
 * `flatline up` runs it in the foreground; tests start it on free ports.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { flatIds, loadCredentials, writeCredentials } from '@flatline/platform/credentials.js';
import { startDatabase, startService, type RunningDatabase, type RunningService } from './components.ts';

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
  readonly replicas: number;
  readonly logLevel: string;
  /** Extra environment per component (storage, query, devices, ingestion), for tests and experiments. */
  readonly env?: Partial<Record<'storage' | 'query' | 'devices' | 'ingestion', Record<string, string>>>;
  /** Progress lines. */
  readonly say?: (line: string) => void;
}

const at = (host: string, port: number): string => `${host}:${port}`;
const plus = (port: number, i: number): number => (port === 0 ? 0 : port + i);

/** A running local stack. */
export class LocalStack {
  db!: RunningDatabase;
  storage!: RunningService;
  query!: RunningService;
  devices!: RunningService;
  readonly ingestion: Array<RunningService | undefined> = [];
  private dbPort = 0;

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

  /** Every running process, for supervision (in start order). */
  processes(): RunningService['process'][] {
    return [this.db?.process, this.devices?.process, this.storage?.process, this.query?.process, ...this.ingestion.map((r) => r?.process)].filter(
      (p): p is RunningService['process'] => p !== undefined,
    );
  }

  /**
   * Starts every component in dependency order; onStarted hears of each as
   * it comes up. On failure, stops whatever started and throws.
   */
  static async start(options: StackOptions, onStarted: (name: string, service: RunningService | RunningDatabase) => void = () => {}): Promise<LocalStack> {
    const stack = new LocalStack(options);
    try {
      await stack.startAll(onStarted);
      return stack;
    } catch (err) {
      await stack.stop();
      throw err;
    }
  }

  private async startAll(onStarted: (name: string, service: RunningService | RunningDatabase) => void): Promise<void> {
    const options = this.options;
    const say = options.say ?? (() => {});
    mkdirSync(this.logs, { recursive: true });
    this.ensureCredentials(say);

    say(`starting ferretdb (state in ${join(options.stateDir, 'ferretdb')})…`);
    await this.startDb(options.ports.db);
    onStarted('ferretdb', this.db);

    say('starting the device simulator, storage and query…');
    const results = await Promise.allSettled([this.startDevices(), this.startPlain('storage'), this.startPlain('query')]);
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') onStarted(['devices', 'storage', 'query'][i]!, r.value);
    });
    const failed = results.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;

    say(`starting ${options.replicas} ingestion replica(s)…`);
    for (let i = 0; i < options.replicas; i++) onStarted(`ingestion-${i}`, await this.startIngestion(i));
    this.writeStackFile();
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
    });
    this.dbPort = Number(this.db.address.slice(this.db.address.lastIndexOf(':') + 1));
  }

  private common(): Record<string, string> {
    return { FLATLINE_MONGODB_URI: this.db.uri, FLATLINE_LOG_LEVEL: this.options.logLevel };
  }

  private async startPlain(service: 'storage' | 'query'): Promise<RunningService> {
    const { host, ports } = this.options;
    const upper = service.toUpperCase();
    const running = await startService({
      service,
      env: {
        ...this.common(),
        [`FLATLINE_${upper}_LISTEN`]: at(host, ports[service]),
        [`FLATLINE_${upper}_METRICS_LISTEN`]: at(host, service === 'storage' ? ports.storageMetrics : ports.queryMetrics),
        ...this.options.env?.[service],
      },
      logFile: join(this.logs, `${service}.log`),
    });
    this[service] = running;
    return running;
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
    });
    return this.devices;
  }

  /** Starts (or restarts) ingestion replica i, with its own outbox folder. */
  async startIngestion(i: number, env: Record<string, string> = {}): Promise<RunningService> {
    const { host, ports } = this.options;
    const name = `ingestion-${i}`;
    const running = await startService({
      service: 'ingestion',
      name,
      env: {
        ...this.common(),
        FLATLINE_INGESTION_ID: name,
        FLATLINE_INGESTION_LISTEN: at(host, plus(ports.ingestion, i)),
        FLATLINE_INGESTION_METRICS_LISTEN: at(host, plus(ports.ingestionMetrics, i)),
        FLATLINE_INGESTION_STATE_DIR: join(this.options.stateDir, 'ingestion', name),
        FLATLINE_DEVICES_URL: `https://${this.devices.addresses['https']}`,
        FLATLINE_DEVICES_CA: join(this.options.stateDir, 'devices', 'ca.pem'),
        FLATLINE_DEVICES_CREDENTIALS: this.credentialsFile,
        FLATLINE_STORAGE_ADDR: this.storage.grpc,
        FLATLINE_FAULTS_FILE: this.faultsFile,
        FLATLINE_POLL_INTERVAL_MS: String(this.options.intervalMs),
        FLATLINE_POLL_TIMEOUT_MS: String(Math.min(2000, Math.floor(this.options.intervalMs * 0.6))),
        ...this.options.env?.ingestion,
        ...env,
      },
      logFile: join(this.logs, `${name}.log`),
    });
    this.ingestion[i] = running;
    if (this.query !== undefined) this.writeStackFile();
    return running;
  }

  /** Writes <state>/stack.json: the addresses `flatline status`, `freshness` and `fault` read. */
  writeStackFile(): void {
    const file = {
      query: this.query.grpc,
      storage: this.storage.grpc,
      devices: this.devices.addresses['https'],
      devicesControl: this.devices.addresses['control'],
      database: this.db.address,
      databasePid: this.db.process.pid,
      ingestion: this.ingestion.map((r) => ({ grpc: r?.grpc, metrics: r?.metrics })),
      metrics: { storage: this.storage.metrics, query: this.query.metrics, devices: this.devices.metrics },
      pid: process.pid,
    };
    writeFileSync(join(this.options.stateDir, 'stack.json'), JSON.stringify(file, null, 1));
  }

  /** Stops everything, ingestion first (so it drains), the database last. */
  async stop(onStopped: (name: string, how: number | string) => void = () => {}): Promise<void> {
    for (const p of [...this.processes()].reverse()) onStopped(p.name, await p.stop());
  }
}
