/** `flatline up`: the whole local stack in the foreground, until Ctrl-C. */
import { existsSync, mkdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_STATE_DIR, REPO_ROOT, TOOLS_BIN, markerOf, ProcessRecord, DEFAULT_PORTS, FREE_PORTS, LocalStack, DEFAULT_STACK_DB, DEFAULT_STACK_MESH, STACK_DBS, STACK_MESHES, type StackDb, type StackMesh, type StackPorts } from '@flatline/stack';
import { ensureTools, TOOLS_FOR, ToolsError } from '../../../scripts/ensure-tools.mjs';

/** Parses a whole number within [min, max] for commander. */
export function wholeNumber(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return n;
  };
}

/** Parses a duration such as 500ms, 5s or 2m into milliseconds. */
export function duration(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value);
  if (m === null) throw new InvalidArgumentError('expected a duration such as 500ms, 5s or 1m');
  return Math.round(Number(m[1]) * (m[2] === 'm' ? 60000 : m[2] === 'ms' ? 1 : 1000));
}

interface UpOptions {
  stateDir: string;
  host: string;
  flats: number;
  interval: number;
  replicas: number;
  nodes: number;
  logLevel: string;
  freePorts: boolean;
  mesh: StackMesh;
  db?: StackDb;
  cpuProf?: string;
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** The `up` command. */
export function upCommand(): Command {
  return new Command('up')
    .description('start FerretDB, the device simulator, storage, query and the ingestion replicas on this machine, restarting any that dies on its own (with back-off); Ctrl-C stops them')
    .option('--state-dir <dir>', 'folder for the database files, device credentials, outboxes and logs', DEFAULT_STATE_DIR)
    .option('--host <host>', 'address the components listen on', '127.0.0.1')
    .addOption(new Option('--flats <n>', 'flats the simulator serves').default(100).argParser(wholeNumber(1, 100000)))
    .addOption(new Option('--interval <duration>', 'poll interval of each flat (e.g. 5s)').default(5000, '5s').argParser(duration))
    .addOption(new Option('--replicas <n>', 'replicas of ingestion (and, with 2 or more nodes, of storage and query)').default(2).argParser(wholeNumber(1, 16)))
    .addOption(
      new Option('--nodes <n>', 'local nodes the replicas are spread over (1: no balancer; 2 or more: HAProxy gives storage and query one address each)')
        .default(2)
        .argParser(wholeNumber(1, 8)),
    )
    .option('--free-ports', 'every component on a free port instead of the documented ones (listed in <state-dir>/stack.json): a second stack beside the first', false)
    .addOption(new Option('--log-level <level>', 'log level of every component').default('info').choices(['debug', 'info', 'warn', 'error']))
    .addOption(
      new Option(
        '--mesh <plane>',
        "istio: Istio's control plane (istiod, built from source by bash tools/install.sh istiod, ~4 min the first time) serving proxyless xDS clients: ingestion's storage client and the supervisor's query client take their routes, endpoints and faults from it (a ServiceEntry per service listing the replicas that take calls, in <state-dir>/istio/config; bootstrap in <state-dir>/istio/xds-bootstrap.json); device faults are the routes istiod generates for each ingestion replica's sidecar identity, applied by its HTTP interceptor; local: the in-process fault injectors and the fault file only, for a machine that cannot build istiod",
      )
        .default(DEFAULT_STACK_MESH)
        .choices([...STACK_MESHES]),
    )
    .addOption(
      new Option(
        '--db <backend>',
        "FerretDB's backend: postgresql (a PostgreSQL 15 cluster in <state-dir>/postgresql, loopback only, started and supervised beside FerretDB; ListMeasurements reads a flat's range from an index, in milliseconds at a day of history) or sqlite (files in <state-dir>/ferretdb; every range read scans all readings)",
      )
        .default(undefined, `${DEFAULT_STACK_DB}, or sqlite for a state folder that holds SQLite files only`)
        .choices([...STACK_DBS]),
    )
    .option('--cpu-prof <dir>', "each Node service writes a V8 CPU profile (node --cpu-prof) into <dir> when it stops: open it in Chrome's DevTools or speedscope")
    .addHelpText(
      'after',
      `\nPorts (on --host): ferretdb ${DEFAULT_PORTS.db}, storage ${DEFAULT_PORTS.storage}, query ${DEFAULT_PORTS.query}, ` +
        `devices ${DEFAULT_PORTS.devices} (control ${DEFAULT_PORTS.devicesControl}), ingestion ${DEFAULT_PORTS.ingestion}+i; ` +
        `metrics: storage ${DEFAULT_PORTS.storageMetrics}, query ${DEFAULT_PORTS.queryMetrics}, devices ${DEFAULT_PORTS.devicesMetrics}, ingestion ${DEFAULT_PORTS.ingestionMetrics}+i. ` +
        'With 2 or more nodes, storage and query ports are HAProxy\'s and their replicas take free ports; ' +
        '`flatline node drain|crash|freeze|restore <node>` fails a node as a VM would.',
    )
    .action(async (options: UpOptions) => {
      await up(options, options.freePorts ? FREE_PORTS : DEFAULT_PORTS);
    });
}

async function up(o: UpOptions, ports: StackPorts): Promise<void> {
  // Run directly (not through npm start): build what the stack runs if it is missing.
  try {
    ensureTools(o.mesh === 'istio' ? TOOLS_FOR.up : TOOLS_FOR.up.filter((t) => t !== 'istiod'), { quiet: true });
  } catch (err) {
    if (!(err instanceof ToolsError)) throw err;
    process.stderr.write(`flatline up: ${err.message}${o.mesh === 'istio' ? ' (--mesh local runs the stack without istiod)' : ''}\n`);
    process.exitCode = 1;
    return;
  }
  mkdirSync(o.stateDir, { recursive: true });
  const record = new ProcessRecord(o.stateDir);
  const leftovers = await record.stopLeftovers();
  if (leftovers.length > 0) say(`[up] stopped what an earlier run left running: ${leftovers.join(', ')}`);
  // The stack restarts a process that dies on its own (and says so); only Ctrl-C or a failed start stops it all.
  const stack = LocalStack.create(
    {
      stateDir: o.stateDir,
      host: o.host,
      ports,
      flats: o.flats,
      intervalMs: o.interval,
      replicas: o.replicas,
      nodes: o.nodes,
      logLevel: o.logLevel,
      mesh: o.mesh,
      db: o.db,
      ...(o.cpuProf !== undefined ? { cpuProfileDir: resolve(o.cpuProf) } : {}),
      say: (l) => say(`[up] ${l}`),
    },
    (name, running) => record.add(running.process.name, running.process.pid, markerOf(name)),
  );
  let stopping = false;
  const stopAll = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    say('[up] stopping…');
    await stack.stop((name, how) => say(`[up]   ${name} stopped (${how})`));
    record.clear();
    process.exit(code);
  };
  // Ctrl-C reaches the children too (same process group); they shut down on
  // their own and the SIGTERM sent here is then a no-op for them.
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));

  try {
    await stack.run();
    printTable(stack);
  } catch (err) {
    say(`[up] ${(err as Error).message}`);
    await stopAll(1);
  }
}

function printTable(stack: LocalStack): void {
  const grpcurl = relative(process.cwd(), join(TOOLS_BIN, 'grpcurl')) || join(TOOLS_BIN, 'grpcurl');
  const rows: string[][] = [
    ['component', 'address', 'metrics'],
    ['ferretdb', stack.db.address, '-'],
    ...(stack.postgresqlUrl === undefined ? [] : [['  postgresql', stack.postgresqlUrl, '-']]),
    ['devices', `https://${stack.devices.addresses['https']}`, `http://${stack.devices.metrics}/metrics`],
    ['  control', `http://${stack.devices.addresses['control']}`, ''],
    ...(stack.haproxy === undefined ? [] : [['haproxy', `storage ${stack.storageAddress}`, ''], ['', `query ${stack.queryAddress}`, '']]),
    ...(stack.toxiproxy === undefined ? [] : [['toxiproxy', `http://${stack.toxiproxy.address}`, '(TCP faults on every link)']]),
    ...(stack.istiod === undefined ? [] : [['istiod', `xds ${stack.istiod.xdsAddress}`, `${stack.istiod.debugUrl}/syncz`]]),
    ...stack.nodes().flatMap((n) => [
      [n.name, '', ''],
      ...n.replicas.map((name) => {
        const r = [...stack.running('storage'), ...stack.running('query'), ...stack.ingestion].find((x) => x?.process.name === name);
        return [`  ${name}`, r?.grpc ?? '-', r === undefined ? '' : `http://${r.metrics}/metrics`];
      }),
    ]),
  ];
  const logs = stack.logs;
  const q = stack.queryAddress;
  say('');
  say(`flatline is up: ${stack.options.flats} flats polled every ${stack.options.intervalMs / 1000} s by ${stack.options.replicas} ingestion replica(s) on ${stack.nodes().length} node(s)`);
  for (const [a, b, c] of rows) say(`  ${a!.padEnd(12)} ${b!.padEnd(26)} ${c}`);
  say(`logs: ${logs.startsWith(REPO_ROOT) ? relative(REPO_ROOT, logs) : logs}/`);
  say('');
  say('try:');
  say('  npm run flatline -- freshness');
  // npm start does not build grpcurl (the stack never runs it): say how to get it.
  if (!existsSync(join(TOOLS_BIN, 'grpcurl'))) say('  bash tools/install.sh grpcurl   (then the grpcurl calls below)');
  say(`  ${grpcurl} -plaintext ${q} list`);
  say(`  ${grpcurl} -plaintext -d '{"flat_id":"17"}' ${q} flatline.query.v1.QueryService/GetLatest`);
  say(`  ${grpcurl} -plaintext -d '{}' ${q} flatline.query.v1.QueryService/GetFreshness`);
  if (stack.nodes().length >= 2) say(`  npm run flatline -- node crash ${stack.nodes()[0]!.name}   (then: node restore ${stack.nodes()[0]!.name})`);
  say('');
  say('A process that dies on its own is restarted with back-off (npm run flatline -- status shows restarts and last exits).');
  say('Ctrl-C stops everything.');
}
