/**
 * `flatline gaps` and `flatline drained`: the loss checks of the chaos
 * experiments. On a local stack they ask the supervisor (GET /gaps, GET
 * /drained), as the experiments do; `gaps --mongodb-uri` reads a database
 * directly (a cluster's).
 */
import { Command, Option } from 'commander';
import { DEFAULT_STATE_DIR, PROBE_DEADLINES_MS, callSupervisor, seqGaps, requireSupervisor, type GapReport } from '@flatline/stack';
import { duration } from './up.ts';

/** The body of an answer the supervisor could not give (anything but the expected codes). */
function refusal(status: number, body: unknown): Error {
  return new Error((body as { error?: string } | null)?.error ?? `answered ${status}`);
}

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
      let report: GapReport & { missing?: number };
      if (o.mongodbUri !== undefined) {
        report = await seqGaps(o.mongodbUri, since);
      } else {
        const stack = requireSupervisor(o.stateDir);
        if (stack === undefined) return;
        try {
          const { status, body } = await callSupervisor(stack.url, '/gaps', { since: since?.toISOString() }, PROBE_DEADLINES_MS.gaps + 10000);
          if (status !== 200 && status !== 409) throw refusal(status, body);
          report = body as GapReport & { missing: number };
        } catch (err) {
          process.stderr.write(`flatline gaps: the supervisor at ${stack.url}: ${(err as Error).message}\n`);
          process.exitCode = 2;
          return;
        }
      }
      const missing = report.gaps.reduce((n, g) => n + g.missing, 0);
      if (o.json) process.stdout.write(`${JSON.stringify({ ...report, missing }, null, 2)}\n`);
      else {
        process.stdout.write(`${report.readings} readings of ${report.devices} devices; ${missing} missing in ${report.gaps.length} device(s)${report.held ? `; ${report.held} more on their way (held in an outbox)` : ""}\n`);
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
      const stack = requireSupervisor(o.stateDir);
      if (stack === undefined) return;
      const end = Date.now() + o.timeout;
      // Asks once a second (timeout=0: no wait on the supervisor's side), to say how it goes meanwhile.
      for (;;) {
        let answer: { empty: boolean; waiting: number; unanswered: string[] };
        try {
          const { status, body } = await callSupervisor(stack.url, '/drained', { timeout: '0s' });
          if (status !== 200 && status !== 409) throw refusal(status, body);
          answer = body as typeof answer;
        } catch (err) {
          process.stderr.write(`flatline drained: the supervisor at ${stack.url}: ${(err as Error).message}\n`);
          process.exitCode = 2;
          return;
        }
        if (answer.empty) {
          process.stdout.write('every outbox is empty\n');
          return;
        }
        const silent = answer.unanswered.length > 0 ? ` (no answer from ${answer.unanswered.join(', ')})` : '';
        if (Date.now() > end) {
          process.stdout.write(`${answer.waiting} fetch result(s) still waiting after ${o.timeout / 1000} s${silent}\n`);
          process.exitCode = 1;
          return;
        }
        process.stderr.write(`waiting: ${answer.waiting} fetch result(s) in the outboxes${silent}\n`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    });
}
