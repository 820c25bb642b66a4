/** Address helpers. */
import { once } from 'node:events';
import type { AddressInfo, Server } from 'node:net';

/** Splits "host:port" (or "[v6]:port") into its parts. */
export function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  if (i < 0) throw new Error(`not a host:port address: ${address}`);
  const host = address.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(address.slice(i + 1)) };
}

/** "host:port" with the given port, keeping the host of address. */
export function withPort(address: string, port: number): string {
  return `${address.slice(0, address.lastIndexOf(':'))}:${port}`;
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
