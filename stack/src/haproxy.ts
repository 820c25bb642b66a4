/**
 * HAProxy as the local nodes' "Service": one stable address per gRPC service
 * in front of its replicas, as kube-proxy gives a Kubernetes Service. It
 * speaks HTTP/2 on both sides, so it balances per call (not per connection),
 * and checks each replica with a real gRPC health call: a frozen replica
 * (SIGSTOP: the socket accepts, nothing answers) fails the check within
 * about two seconds and its sessions are cut, which a TCP check would miss.
 */
import { writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { TOOLS_BIN } from './paths.ts';
import { spawnReady, type ManagedProcess } from './processes.ts';

/** One balanced service: its stable address and its replicas. */
export interface Frontend {
  readonly name: string;
  /** host:port clients use. */
  readonly listen: string;
  readonly servers: ReadonlyArray<{ readonly name: string; readonly address: string }>;
}

/** Renders haproxy.cfg for the frontends; with adminSocket, HAProxy's runtime API listens there (mode 0600). */
export function haproxyConfig(frontends: readonly Frontend[], adminSocket?: string): string {
  const lines = [
    'global',
    // One line per replica going down or up: the log tells when the balancer saw a node fail.
    '  log stderr format raw local0 notice',
    ...(adminSocket === undefined ? [] : [`  stats socket ${adminSocket} mode 600 level admin`]),
    'defaults',
    '  mode http',
    '  log global',
    '  timeout connect 1s',
    '  timeout check 1s',
    // Calls carry their own deadlines and WatchFreshness streams for long:
    // HAProxy must not cut them; a dead replica is found by the checks.
    '  timeout client 1h',
    '  timeout server 1h',
    // Retry only what never reached a replica (refused connection): every call
    // here is idempotent, but retries are counted once, in the application.
    '  retries 2',
    '  option redispatch 1',
    '  retry-on conn-failure empty-response',
  ];
  for (const f of frontends) {
    lines.push(
      `frontend ${f.name}`,
      `  bind ${f.listen} proto h2`,
      `  default_backend ${f.name}`,
      `backend ${f.name}`,
      '  balance roundrobin',
      '  option httpchk',
      '  http-check connect proto h2',
      // Any gRPC answer (HTTP 200) shows the replica's process runs and reads its socket.
      `  http-check send meth POST uri /grpc.health.v1.Health/Check ver HTTP/2 hdr host ${f.name} hdr content-type application/grpc hdr te trailers`,
      '  http-check expect status 200',
      '  default-server proto h2 check inter 1s fall 2 rise 1 on-marked-down shutdown-sessions',
      ...f.servers.map((s) => `  server ${s.name} ${s.address}`),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** A free TCP port on host (closed again: HAProxy binds it right after). */
export async function freePort(host: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Where startHaproxy puts HAProxy's runtime API (a Unix socket, mode 0600) in a state folder. */
export function haproxyAdminSocket(stateDir: string): string {
  return join(stateDir, 'haproxy.sock');
}

/**
 * Takes a server out of its backend's rotation (maint) or puts it back
 * (ready) through HAProxy's runtime API: `set server <backend>/<server>
 * state …`. HAProxy answers nothing on success; anything else is an error.
 */
export async function setServerState(adminSocket: string, backend: string, server: string, state: 'ready' | 'maint', timeoutMs = 2000): Promise<void> {
  const answer = await new Promise<string>((resolve, reject) => {
    const socket = connect(adminSocket);
    let out = '';
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    socket.on('data', (d: Buffer) => (out += d.toString()));
    socket.once('error', reject);
    socket.once('close', () => resolve(out));
    socket.end(`set server ${backend}/${server} state ${state}\n`);
  });
  if (answer.trim() !== '') throw new Error(`HAProxy's runtime API at ${adminSocket}: set server ${backend}/${server} state ${state}: ${answer.trim()}`);
}

/** Writes the configuration into stateDir, checks it (haproxy -c) and starts HAProxy; ready once it logs that it started. */
export async function startHaproxy(options: { frontends: readonly Frontend[]; stateDir: string; logFile: string; detached?: boolean }): Promise<ManagedProcess> {
  const cfg = join(options.stateDir, 'haproxy.cfg');
  writeFileSync(cfg, haproxyConfig(options.frontends, haproxyAdminSocket(options.stateDir)));
  const { process } = await spawnReady({
    name: 'haproxy',
    detached: options.detached ?? false,
    command: join(TOOLS_BIN, 'haproxy'),
    // -db: foreground; -V: verbose start-up, whose last line comes once the listeners are bound.
    args: ['-db', '-V', '-f', cfg],
    logFile: options.logFile,
    ready: (line) => (/^Using \S+ as the polling mechanism/.test(line) ? 'ready' : undefined),
    readyTimeoutMs: 10000,
  });
  return process;
}
