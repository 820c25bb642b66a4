/** `flatline gaps` and `flatline drained`: the loss checks of the chaos experiments. */
import { Command, Option } from 'commander';
import { DEFAULT_STATE_DIR, metricValue, seqGaps, requireStack } from '@flatline/stack';
import { duration } from './up.ts';

/** The `gaps` command. */
export function gapsCommand(): Command {
  return new Command('gaps')
    .description('count missing sequence numbers in every device\'s stored readings, epoch by epoch (a reset meter counts from 1 again); exit 1 when any is missing')
    .option('--state-dir <dir>', 'state folder of the local stack', DEFAULT_STATE_DIR)
    .option('--json', 'print as JSON', false)
    .option('--mongodb-uri <uri>', "read this database instead of the local stack's (a cluster's MongoDB, e.g. through kubectl port-forward)")
    .option(
      '--since <time>',
      'only readings taken at or after this ISO time (a chaos run passes its start: readings a device dropped while no stack ran before it are not the run\'s loss); empty: all',
    )
    .action(async (o: { stateDir: string; json: boolean; mongodbUri?: string; since?: string }) => {
      const since = o.since === undefined || o.since === '' ? undefined : new Date(o.since);
      if (since !== undefined && Number.isNaN(since.getTime())) {
        process.stderr.write(`flatline gaps: --since must be an ISO time, got ${JSON.stringify(o.since)}\n`);
        process.exitCode = 2;
        return;
      }
      let uri = o.mongodbUri;
      if (uri === undefined) {
        const stack = requireStack(o.stateDir);
        if (stack === undefined) return;
        uri = `mongodb://${stack.database}/flatline`;
      }
      const report = await seqGaps(uri, since);
      const missing = report.gaps.reduce((n, g) => n + g.missing, 0);
      if (o.json) process.stdout.write(`${JSON.stringify({ ...report, missing }, null, 2)}\n`);
      else {
        process.stdout.write(`${report.readings} readings of ${report.devices} devices; ${missing} missing in ${report.gaps.length} device(s)\n`);
        for (const g of report.gaps.slice(0, 20)) process.stdout.write(`  flat ${g.flat} device ${g.device}${g.epoch > 0 ? ` (epoch ${g.epoch}: after ${g.epoch} reset(s))` : ''}: ${g.missing} missing\n`);
      }
      if (missing > 0) process.exitCode = 1;
    });
}

/** The `drained` command. */
export function drainedCommand(): Command {
  return new Command('drained')
    .description('wait until every ingestion outbox is empty (everything fetched is stored); exit 1 if not within --timeout')
    .option('--state-dir <dir>', 'state folder of the local stack', DEFAULT_STATE_DIR)
    .addOption(new Option('--timeout <duration>', 'how long to wait').default(60000, '60s').argParser(duration))
    .action(async (o: { stateDir: string; timeout: number }) => {
      const stack = requireStack(o.stateDir);
      if (stack === undefined) return;
      const end = Date.now() + o.timeout;
      for (;;) {
        const sizes = await Promise.all(stack.ingestion.map((r) => (r.metrics ? metricValue(r.metrics, 'flatline_ingestion_outbox_fetches').catch(() => 0) : Promise.resolve(0))));
        const total = sizes.reduce((a, b) => a + b, 0);
        if (total === 0) {
          process.stdout.write('every outbox is empty\n');
          return;
        }
        if (Date.now() > end) {
          process.stdout.write(`${total} fetch result(s) still waiting after ${o.timeout / 1000} s\n`);
          process.exitCode = 1;
          return;
        }
        process.stderr.write(`waiting: ${total} fetch result(s) in the outboxes\n`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    });
}
