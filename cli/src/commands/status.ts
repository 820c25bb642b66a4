/**
 * `flatline status`: is each component of the running stack up, how often
 * the supervisor restarted it and how it last ended, and how full the
 * outboxes are; the supervisor's GET /status, printed.
 */
import { Command } from 'commander';
import { DEFAULT_STATE_DIR, PROBE_DEADLINES_MS, callSupervisor, requireSupervisor, type StatusRow, type SupervisedStatus } from '@flatline/stack';

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
      const stack = requireSupervisor(o.stateDir);
      if (stack === undefined) return;
      let rows: StatusRow[];
      let code: number;
      try {
        const { status, body } = await callSupervisor(stack.url, '/status', {}, PROBE_DEADLINES_MS.status + 5000);
        if (!Array.isArray(body)) throw new Error((body as { error?: string } | null)?.error ?? `answered ${status}`);
        rows = body as StatusRow[];
        code = status;
      } catch (err) {
        process.stderr.write(`flatline status: the supervisor at ${stack.url}: ${(err as Error).message}\n`);
        process.exitCode = 2;
        return;
      }
      if (o.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      } else {
        process.stdout.write(`${'component'.padEnd(14)} ${'address'.padEnd(22)} ${'health'.padEnd(14)} ${'restarts'.padEnd(8)} ${'last exit'.padEnd(24)} flats  outbox\n`);
        for (const r of rows) {
          const health = r.state === 'back-off' && r.nextStartAt !== undefined ? `back-off ${Math.max(0, Math.ceil((Date.parse(r.nextStartAt) - Date.now()) / 1000))} s` : r.health;
          const extra = r.component.startsWith('ingestion-') ? `${String(r.flats ?? '-').padEnd(6)} ${r.outbox ?? '-'}` : '';
          process.stdout.write(`${r.component.padEnd(14)} ${r.address.padEnd(22)} ${health.padEnd(14)} ${String(r.restarts ?? '-').padEnd(8)} ${exitText(r.lastExit).padEnd(24)} ${extra}\n`);
        }
        if (stack.file.started !== true) process.stdout.write('the stack is still starting (not every component is up yet)\n');
      }
      // 200: started and every component SERVING.
      if (code !== 200) process.exitCode = 1;
    });
}
