/**
 * The status of a running stack, row by row: is each component up, how often
 * the supervisor restarted it and how it last ended, and how full the
 * outboxes are. The supervisor answers it on GET /status; `flatline status`
 * prints it.
 */
import { MongoClient } from 'mongodb';
import { checkHealth } from '@flatline/platform';
import type { SupervisedStatus } from './crash-loop.ts';
import { psql } from './postgres.ts';
import { metricValue } from './probes.ts';
import type { StackFile } from './stack-file.ts';
import { ToxiproxyClient } from './toxiproxy.ts';

/** One row of the status. */
export interface StatusRow {
  readonly component: string;
  readonly address: string;
  /** SERVING, NOT_SERVING, an error, or where the supervisor has it (back-off, starting, stopped). */
  readonly health: string;
  /** Supervision (absent for a stable address such as HAProxy's storage frontend). */
  readonly state?: SupervisedStatus['state'];
  readonly pid?: number;
  readonly restarts?: number;
  readonly lastExit?: SupervisedStatus['lastExit'];
  readonly nextStartAt?: string;
  readonly flats?: number;
  readonly outbox?: number;
}

/** A metric's value, or undefined when the endpoint does not answer. */
function scrape(address: string | undefined, metric: string): Promise<number | undefined> {
  return address === undefined || address === '' ? Promise.resolve(undefined) : metricValue(address, metric).catch(() => undefined);
}

/** Whether the database answers a ping within timeoutMs. */
async function pingDatabase(address: string, timeoutMs = 2000): Promise<string> {
  const client = new MongoClient(`mongodb://${address}/?directConnection=true`, { serverSelectionTimeoutMS: timeoutMs, connectTimeoutMS: timeoutMs, socketTimeoutMS: timeoutMs });
  try {
    await client.db('admin').command({ ping: 1 });
    return 'SERVING';
  } catch {
    return 'NOT_SERVING';
  } finally {
    // Forced: a polite close ends sessions on the server, which a frozen one never answers.
    await client.close(true).catch(() => {});
  }
}

/** Whether the simulator's control API answers. */
async function checkDevices(control: string): Promise<string> {
  try {
    const res = await fetch(`http://${control}/behaviours`, { signal: AbortSignal.timeout(2000) });
    await res.body?.cancel();
    return res.ok ? 'SERVING' : `NOT_SERVING (HTTP ${res.status})`;
  } catch {
    return 'NOT_SERVING';
  }
}

/**
 * Every component of the stack described by file, probed: each check is
 * bounded (2 s for a ping or a health call, 3 s for a scrape), so the whole
 * answers within a few seconds even with a frozen node or database.
 */
export async function stackStatus(file: StackFile): Promise<StatusRow[]> {
  const supervised = new Map((file.components ?? []).map((c) => [c.name, c]));
  /** Supervision of name, and its health: probe() while it runs, else where the supervisor has it. */
  const withSupervision = async (component: string, address: string, probe: () => Promise<string>): Promise<StatusRow> => {
    const s = supervised.get(component);
    const health = s === undefined || s.state === 'running' ? await probe() : s.state;
    const { name: _name, ...rest } = s ?? { name: component };
    return { component, address, health, ...rest };
  };
  const balanced = (file.replicas ?? []).filter((r) => /^(storage|query)-\d+$/.test(r.name));
  return Promise.all([
    ...(file.postgresql !== undefined ? [withSupervision('postgres', new URL(file.postgresql.url).host, () => checkPostgres(file.postgresql!.url))] : []),
    withSupervision('ferretdb', file.database, () => pingDatabase(file.database)),
    withSupervision('devices', file.devices, () => checkDevices(file.devicesControl)),
    ...(supervised.has('haproxy') ? [withSupervision('haproxy', `storage ${file.storage}`, async () => 'SERVING')] : []),
    ...(file.toxiproxy !== undefined
      ? [withSupervision('toxiproxy', file.toxiproxy.api, async () => (await new ToxiproxyClient(file.toxiproxy!.api, 2000).version().then(() => 'SERVING', () => 'NOT_SERVING')))]
      : []),
    ...(file.istiod !== undefined ? [withSupervision('istiod', `xds ${file.istiod.xds}`, () => checkIstiod(file.istiod!.debug))] : []),
    withSupervision('storage', file.storage, () => checkHealth(file.storage)),
    withSupervision('query', file.query, () => checkHealth(file.query)),
    ...balanced.map((r) => withSupervision(r.name, r.grpc, () => checkHealth(r.grpc))),
    ...file.ingestion.map(async (r, i): Promise<StatusRow> => {
      const row = await withSupervision(`ingestion-${i}`, r.grpc ?? '-', async () => (r.grpc ? checkHealth(r.grpc) : 'unknown'));
      return { ...row, flats: await scrape(r.metrics, 'flatline_ingestion_flats_held'), outbox: await scrape(r.metrics, 'flatline_ingestion_outbox_fetches') };
    }),
  ]);
}

/** PostgreSQL answers a query (psql SELECT 1): SERVING, else NOT_SERVING; within 2 s. */
async function checkPostgres(url: string): Promise<string> {
  return psql(url, 'SELECT 1', 2000).then(
    (out) => (out === '1' ? 'SERVING' : 'NOT_SERVING'),
    () => 'NOT_SERVING',
  );
}

/** istiod answers its debug endpoint (its /ready stays 503 without Kubernetes): SERVING, else NOT_SERVING; within 2 s. */
async function checkIstiod(debugUrl: string): Promise<string> {
  try {
    const res = await fetch(`${debugUrl}/syncz`, { signal: AbortSignal.timeout(2000) });
    await res.body?.cancel();
    return res.ok ? 'SERVING' : 'NOT_SERVING';
  } catch {
    return 'NOT_SERVING';
  }
}

/** Whether the stack has started and every row is SERVING (what `flatline status` exits 0 on). */
export function allServing(rows: readonly StatusRow[], started: boolean): boolean {
  return started && rows.every((r) => r.health === 'SERVING');
}
