/**
 * `flatline status`: is each component of the running stack up, how often
 * the supervisor restarted it and how it last ended, and how full the
 * outboxes are.
 */
import { Command } from 'commander';
import { MongoClient } from 'mongodb';
import { checkHealth } from '@flatline/platform';
import { DEFAULT_STATE_DIR, type SupervisedStatus, metricValue, requireStack } from '@flatline/stack';

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
    await client.close().catch(() => {});
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

/** "SIGKILL 35 s ago" for a last exit. */
function exitText(exit: SupervisedStatus['lastExit']): string {
  if (exit === undefined) return '-';
  const ago = Math.max(0, Math.round((Date.now() - Date.parse(exit.at)) / 1000));
  return `${exit.code} ${ago} s ago`;
}

/** The `status` command. */
export function statusCommand(): Command {
  return new Command('status')
    .description(
      'show whether each component of the local stack answers, how many times the supervisor restarted it and how it last exited, and what each ingestion replica holds; ' +
        'exit 1 unless the stack has started and every component is SERVING',
    )
    .option('--state-dir <dir>', 'state folder of the running stack', DEFAULT_STATE_DIR)
    .option('--json', 'print as JSON', false)
    .action(async (o: { stateDir: string; json: boolean }) => {
      const file = requireStack(o.stateDir);
      if (file === undefined) return;
      const supervised = new Map((file.components ?? []).map((c) => [c.name, c]));
      /** Supervision of name, and its health: probe() while it runs, else where the supervisor has it. */
      const withSupervision = async (component: string, address: string, probe: () => Promise<string>): Promise<StatusRow> => {
        const s = supervised.get(component);
        const health = s === undefined || s.state === 'running' ? await probe() : s.state;
        const { name: _name, ...rest } = s ?? { name: component };
        return { component, address, health, ...rest };
      };
      const balanced = (file.replicas ?? []).filter((r) => /^(storage|query)-\d+$/.test(r.name));
      const rows: StatusRow[] = await Promise.all([
        withSupervision('ferretdb', file.database, () => pingDatabase(file.database)),
        withSupervision('devices', file.devices, () => checkDevices(file.devicesControl)),
        ...(supervised.has('haproxy') ? [withSupervision('haproxy', `storage ${file.storage}`, async () => 'SERVING')] : []),
        withSupervision('storage', file.storage, () => checkHealth(file.storage)),
        withSupervision('query', file.query, () => checkHealth(file.query)),
        ...balanced.map((r) => withSupervision(r.name, r.grpc, () => checkHealth(r.grpc))),
        ...file.ingestion.map(async (r, i): Promise<StatusRow> => {
          const row = await withSupervision(`ingestion-${i}`, r.grpc ?? '-', async () => (r.grpc ? checkHealth(r.grpc) : 'unknown'));
          return { ...row, flats: await scrape(r.metrics, 'flatline_ingestion_flats_held'), outbox: await scrape(r.metrics, 'flatline_ingestion_outbox_fetches') };
        }),
      ]);
      if (o.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      } else {
        process.stdout.write(`${'component'.padEnd(14)} ${'address'.padEnd(22)} ${'health'.padEnd(14)} ${'restarts'.padEnd(8)} ${'last exit'.padEnd(24)} flats  outbox\n`);
        for (const r of rows) {
          const health = r.state === 'back-off' && r.nextStartAt !== undefined ? `back-off ${Math.max(0, Math.ceil((Date.parse(r.nextStartAt) - Date.now()) / 1000))} s` : r.health;
          const extra = r.component.startsWith('ingestion-') ? `${String(r.flats ?? '-').padEnd(6)} ${r.outbox ?? '-'}` : '';
          process.stdout.write(`${r.component.padEnd(14)} ${r.address.padEnd(22)} ${health.padEnd(14)} ${String(r.restarts ?? '-').padEnd(8)} ${exitText(r.lastExit).padEnd(24)} ${extra}\n`);
        }
        if (file.started !== true) process.stdout.write('the stack is still starting (not every component is up yet)\n');
      }
      if (rows.some((r) => r.health !== 'SERVING') || file.started !== true) process.exitCode = 1;
    });
}
