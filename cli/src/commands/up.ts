/** `flatline up`: the whole local stack in the foreground, until Ctrl-C. */
import { mkdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_STATE_DIR, REPO_ROOT, serviceEntry, TOOLS_BIN } from '../paths.ts';
import { ProcessRecord } from '../stack/leftovers.ts';
import { startDatabase, startService, type RunningService } from '../stack/components.ts';
import type { ManagedProcess } from '../stack/processes.ts';

function port(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new InvalidArgumentError('expected a port from 0 to 65535');
  return n;
}

interface UpOptions {
  stateDir: string;
  host: string;
  dbPort: number;
  storagePort: number;
  queryPort: number;
  storageMetricsPort: number;
  queryMetricsPort: number;
  logLevel: string;
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** The `up` command. */
export function upCommand(): Command {
  return new Command('up')
    .description('start FerretDB, storage and query on this machine and keep them running until Ctrl-C')
    .option('--state-dir <dir>', 'folder for the database files and logs', DEFAULT_STATE_DIR)
    .option('--host <host>', 'address every component listens on', '127.0.0.1')
    .addOption(new Option('--db-port <port>', 'FerretDB (MongoDB wire protocol) port').default(27117).argParser(port))
    .addOption(new Option('--storage-port <port>', 'storage gRPC port').default(7101).argParser(port))
    .addOption(new Option('--query-port <port>', 'query gRPC port').default(7102).argParser(port))
    .addOption(new Option('--storage-metrics-port <port>', 'storage /metrics port').default(9101).argParser(port))
    .addOption(new Option('--query-metrics-port <port>', 'query /metrics port').default(9102).argParser(port))
    .addOption(new Option('--log-level <level>', 'services log level').default('info').choices(['debug', 'info', 'warn', 'error']))
    .action(async (options: UpOptions) => {
      await up(options);
    });
}

async function up(o: UpOptions): Promise<void> {
  const logs = join(o.stateDir, 'logs');
  mkdirSync(logs, { recursive: true });
  const record = new ProcessRecord(o.stateDir);
  const leftovers = await record.stopLeftovers();
  if (leftovers.length > 0) say(`[up] stopped what an earlier run left running: ${leftovers.join(', ')}`);
  const started: ManagedProcess[] = [];
  let stopping = false;
  const stopAll = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    say('[up] stopping…');
    for (const p of [...started].reverse()) {
      const how = await p.stop();
      say(`[up]   ${p.name} stopped (${how})`);
    }
    record.clear();
    process.exit(code);
  };
  // Ctrl-C reaches the children too (same process group); they shut down on
  // their own and the SIGTERM sent here is then a no-op for them.
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));
  const watch = (p: ManagedProcess, marker: string): void => {
    started.push(p);
    record.add(p.name, p.pid, marker);
    void p.exited.then((code) => {
      if (stopping) return;
      say(`[up] ${p.name} exited unexpectedly (${code}); its log: ${join(logs, `${p.name}.log`)}\n${p.lastLines()}`);
      void stopAll(1);
    });
  };

  try {
    say(`[up] starting ferretdb (state in ${join(o.stateDir, 'ferretdb')})…`);
    const db = await startDatabase({
      listen: `${o.host}:${o.dbPort}`,
      stateDir: join(o.stateDir, 'ferretdb'),
      logFile: join(logs, 'ferretdb.log'),
    });
    watch(db.process, join(TOOLS_BIN, 'ferretdb'));
    const common = { FLATLINE_MONGODB_URI: db.uri, FLATLINE_LOG_LEVEL: o.logLevel };
    say('[up] starting storage and query…');
    const results = await Promise.allSettled([
      startService({
        service: 'storage',
        env: { ...common, FLATLINE_STORAGE_LISTEN: `${o.host}:${o.storagePort}`, FLATLINE_STORAGE_METRICS_LISTEN: `${o.host}:${o.storageMetricsPort}` },
        logFile: join(logs, 'storage.log'),
      }),
      startService({
        service: 'query',
        env: { ...common, FLATLINE_QUERY_LISTEN: `${o.host}:${o.queryPort}`, FLATLINE_QUERY_METRICS_LISTEN: `${o.host}:${o.queryMetricsPort}` },
        logFile: join(logs, 'query.log'),
      }),
    ]);
    for (const r of results) if (r.status === 'fulfilled') watch(r.value.process, serviceEntry(r.value.process.name));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    const [storage, query] = results.map((r) => (r as PromiseFulfilledResult<RunningService>).value) as [RunningService, RunningService];
    printTable(o, db.address, storage, query, logs);
  } catch (err) {
    say(`[up] ${(err as Error).message}`);
    await stopAll(1);
  }
}

function printTable(o: UpOptions, db: string, storage: RunningService, query: RunningService, logs: string): void {
  const grpcurl = relative(process.cwd(), join(TOOLS_BIN, 'grpcurl')) || join(TOOLS_BIN, 'grpcurl');
  const rows = [
    ['component', 'address', 'metrics'],
    ['ferretdb', db, '-'],
    ['storage', storage.grpc, `http://${storage.metrics}/metrics`],
    ['query', query.grpc, `http://${query.metrics}/metrics`],
  ];
  say('');
  say('flatline is up:');
  for (const [a, b, c] of rows) say(`  ${a!.padEnd(10)} ${b!.padEnd(18)} ${c}`);
  say(`logs: ${logs.startsWith(REPO_ROOT) ? relative(REPO_ROOT, logs) : logs}/`);
  say('');
  say('try:');
  say(`  ${grpcurl} -plaintext ${query.grpc} list`);
  say(`  ${grpcurl} -plaintext -d '{"flat_id":"17"}' ${query.grpc} flatline.query.v1.QueryService/GetLatest`);
  say(`  ${grpcurl} -plaintext -d '{}' ${query.grpc} flatline.query.v1.QueryService/GetFreshness`);
  say('');
  say('Ctrl-C stops everything.');
}
