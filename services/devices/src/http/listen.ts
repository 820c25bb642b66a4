/** Binding and closing the simulator's HTTP(S) servers. */
import { once } from 'node:events';
import { isIPv4, isIPv6, type AddressInfo } from 'node:net';
import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';

type Server = HttpServer | HttpsServer;
import { splitHostPort } from '@flatline/platform/net.js';

/** Whether host (as in a host:port, brackets allowed) names only this machine's loopback interface. */
export function isLoopbackAddress(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost') return true;
  if (isIPv4(h)) return h.startsWith('127.');
  if (isIPv6(h)) return h === '::1' || /^::ffff:127\./.test(h) || /^(0{1,4}:){7}0{0,3}1$/.test(h);
  return false;
}

/** Listens on address (host:port; port 0 picks one) and returns the bound port; the error names what and where. */
export async function listen(server: Server, address: string, what: string): Promise<number> {
  const { host, port } = splitHostPort(address);
  server.listen(port, host);
  await Promise.race([
    once(server, 'listening'),
    once(server, 'error').then(([err]) => {
      throw new Error(`cannot listen for ${what} on ${address}: ${(err as Error).message}`);
    }),
  ]);
  return (server.address() as AddressInfo).port;
}

/**
 * Stops accepting connections and closes idle keep-alive ones at once;
 * answers in flight (a slow body, say) may finish within graceMs, then
 * their connections are destroyed.
 */
export async function closeGracefully(server: Server, graceMs: number): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  let timer: NodeJS.Timeout | undefined;
  const forced = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      server.closeAllConnections();
      resolve();
    }, graceMs);
  });
  await Promise.race([closed, forced]);
  clearTimeout(timer);
  await closed;
}
