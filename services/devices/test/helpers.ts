/** Helpers of the simulator's tests: a temporary state folder, an in-process simulator, HTTPS requests that verify the CA. */
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { flatIds, writeCredentials, type CredentialsMap, type Logger, splitHostPort } from '@flatline/platform';
import { loadConfig } from '../src/config.ts';
import { startSimulator, type RunningSimulator } from '../src/simulator.ts';

/** A temporary state folder with a credentials file for flats "1" … "count". */
export function stateDir(count = 3): { path: string; credentials: CredentialsMap; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), 'flatline-devices-'));
  const credentials = writeCredentials(join(path, 'credentials.json'), flatIds(count));
  return { path, credentials, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** A logger whose lines are kept in memory (text). */
export function memoryLogger(level = 'trace'): { logger: Logger; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  return { logger: pino({ level }, stream), text: () => chunks.join('') };
}

/** Starts a simulator on port 0 with the state folder dir and extra env. */
export function start(dir: string, env: Record<string, string> = {}, logger: Logger = memoryLogger('silent').logger): Promise<RunningSimulator> {
  const config = loadConfig({
    FLATLINE_DEVICES_LISTEN: '127.0.0.1:0',
    FLATLINE_DEVICES_CONTROL_LISTEN: '127.0.0.1:0',
    FLATLINE_DEVICES_METRICS_LISTEN: '127.0.0.1:0',
    FLATLINE_DEVICES_STATE_DIR: dir,
    FLATLINE_SHUTDOWN_GRACE_MS: '200',
    ...env,
  });
  return startSimulator(config, logger);
}

/** An answer, its body read completely. */
export interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** Milliseconds from the request to the first body byte, and to the end. */
  readonly firstByteMs: number;
  readonly endMs: number;
}

/** Options of get(). */
export interface GetOptions {
  readonly ca?: string | undefined;
  readonly user?: string;
  readonly password?: string;
  readonly method?: string;
  readonly servername?: string;
  readonly host?: string;
}

/** An HTTPS request to the simulator at address (host:port), verifying its certificate against ca. */
export function get(address: string, path: string, options: GetOptions = {}): Promise<Answer> {
  const { host, port } = splitHostPort(address);
  const headers: Record<string, string> = {};
  if (options.user !== undefined) headers['authorization'] = `Basic ${Buffer.from(`${options.user}:${options.password ?? ''}`).toString('base64')}`;
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: options.host ?? host, port, path, method: options.method ?? 'GET', headers, ca: options.ca, servername: options.servername, agent: false },
      (res) => {
        let body = '';
        let firstByteMs = -1;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (firstByteMs < 0) firstByteMs = Date.now() - started;
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, firstByteMs, endMs: Date.now() - started }));
        res.on('error', reject);
        res.on('aborted', () => reject(new Error('response aborted')));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** A plain HTTP request with an optional JSON body to the control API at address. */
export function control(address: string, method: string, path: string, body?: unknown): Promise<{ status: number; headers: IncomingHttpHeaders; json: Record<string, unknown> }> {
  const { host, port } = splitHostPort(address);
  const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host, port, path, method, agent: false, headers: payload === undefined ? {} : { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, json: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** Resolves after ms. */
