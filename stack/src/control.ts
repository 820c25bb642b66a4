/**
 * The stack's control socket (<state>/control.sock): how `flatline node …`,
 * run from another process (a chaos experiment's action), asks the process
 * that supervises the stack to fail or restore a node. Only the supervisor
 * can restart what it started, so the request goes to it. A Unix socket in a
 * folder of its own (<state>/control/): the folder is 0700 before the socket
 * exists and the socket 0600 after, so whatever the umask only the user who
 * runs the stack can reach it, at no moment anyone else.
 */
import { createServer, request, type Server } from 'node:http';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { NodeAction, NodeState } from './nodes.ts';

/** What the supervisor does on request. */
export interface NodeControl {
  nodes(): Array<{ name: string; state: NodeState; replicas: string[] }>;
  nodeAction(name: string, action: NodeAction): Promise<NodeState>;
}

const ACTIONS: readonly NodeAction[] = ['drain', 'crash', 'freeze', 'restore'];

/** Serves control on the Unix socket path until closed; path's folder (its own) is made 0700, the socket 0600. */
export async function serveControl(path: string, control: NodeControl): Promise<Server> {
  // bind() gives the socket 0777 minus the umask: the private folder covers the moment before the chmod.
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  chmodSync(dirname(path), 0o700);
  rmSync(path, { force: true });
  const server = createServer((req, res) => {
    const reply = (code: number, body: unknown): void => {
      res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    const m = /^\/nodes(?:\/([\w-]+)\/(\w+))?$/.exec(req.url ?? '');
    if (m === null) return reply(404, { error: `no such path: ${req.url}` });
    if (m[1] === undefined) return req.method === 'GET' ? reply(200, control.nodes()) : reply(405, { error: 'GET /nodes' });
    const action = m[2] as NodeAction;
    if (req.method !== 'POST' || !ACTIONS.includes(action)) return reply(400, { error: `POST /nodes/<node>/<${ACTIONS.join('|')}>` });
    control.nodeAction(m[1], action).then(
      (state) => reply(200, { node: m[1], state }),
      (err: Error) => reply(409, { error: err.message }),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, resolve);
  });
  chmodSync(path, 0o600);
  return server;
}

/** Calls the control socket; resolves with the status code and the JSON body. */
export function callControl(path: string, method: 'GET' | 'POST', url: string, timeoutMs = 60000): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: path, method, path: url, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown });
        } catch {
          reject(new Error(`control socket answered ${res.statusCode} with no JSON`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`control socket did not answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}
