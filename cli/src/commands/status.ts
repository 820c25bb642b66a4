/** `flatline status`: is each component of the running stack up, and how full are the outboxes. */
import { Command } from 'commander';
import { checkHealth } from '@flatline/platform/grpc-client.js';
import { DEFAULT_STATE_DIR } from '../paths.ts';
import { metricValue } from '../stack/probes.ts';
import { requireStack } from '../stack/stack-file.ts';

/** A metric's value, or undefined when the endpoint does not answer. */
function scrape(address: string | undefined, metric: string): Promise<number | undefined> {
  return address === undefined || address === '' ? Promise.resolve(undefined) : metricValue(address, metric).catch(() => undefined);
}

/** The `status` command. */
export function statusCommand(): Command {
  return new Command('status')
    .description('show whether each component of the local stack answers, and what each ingestion replica holds; exit 1 unless the stack has started and every component is SERVING')
    .option('--state-dir <dir>', 'state folder of the running stack', DEFAULT_STATE_DIR)
    .option('--json', 'print as JSON', false)
    .action(async (o: { stateDir: string; json: boolean }) => {
      const file = requireStack(o.stateDir);
      if (file === undefined) return;
      const rows = await Promise.all([
        checkHealth(file.storage).then((h) => ({ component: 'storage', address: file.storage, health: h })),
        checkHealth(file.query).then((h) => ({ component: 'query', address: file.query, health: h })),
        ...file.ingestion.map(async (r, i) => ({
          component: `ingestion-${i}`,
          address: r.grpc ?? '-',
          health: r.grpc ? await checkHealth(r.grpc) : 'unknown',
          flats: await scrape(r.metrics, 'flatline_ingestion_flats_held'),
          outbox: await scrape(r.metrics, 'flatline_ingestion_outbox_fetches'),
        })),
      ]);
      if (o.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      process.stdout.write(`${'component'.padEnd(14)} ${'address'.padEnd(22)} ${'health'.padEnd(14)} flats  outbox\n`);
      for (const r of rows) {
        const extra = 'flats' in r ? `${String(r.flats ?? '-').padEnd(6)} ${r.outbox ?? '-'}` : '';
        process.stdout.write(`${r.component.padEnd(14)} ${r.address.padEnd(22)} ${r.health.padEnd(14)} ${extra}\n`);
      }
      if (file.started !== true) process.stdout.write('the stack is still starting (not every component is up yet)\n');
      if (rows.some((r) => r.health !== 'SERVING') || file.started !== true) process.exitCode = 1;
    });
}
