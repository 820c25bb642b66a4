/**
 * `flatline deadletters`: the fetch results storage refused as invalid, kept
 * beside each ingestion replica's outbox; list them, and replay them (back
 * into the outbox, which the running forwarder sends again). Works with the
 * stack running or stopped: the outboxes are SQLite files in WAL mode.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { Outbox, type DeadLetter } from '@flatline/ingestion';
import { DEFAULT_STATE_DIR } from '@flatline/stack';

/** The outbox files of the replicas under stateDir, by replica name. */
function outboxes(stateDir: string): Array<{ replica: string; file: string }> {
  const root = join(stateDir, 'ingestion');
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(root, d.name, 'outbox.sqlite')))
    .map((d) => ({ replica: d.name, file: join(root, d.name, 'outbox.sqlite') }))
    .sort((a, b) => a.replica.localeCompare(b.replica));
}

function withOutbox<T>(file: string, use: (box: Outbox) => T): T {
  const box = new Outbox(file);
  try {
    return use(box);
  } finally {
    box.close();
  }
}

function ids(text: string): number[] {
  const out = text.split(',').map((s) => Number(s.trim()));
  if (out.some((n) => !Number.isSafeInteger(n) || n < 1)) throw new InvalidArgumentError(`expected dead-letter ids such as 3,7, got ${JSON.stringify(text)}`);
  return out;
}

interface Listed extends Omit<DeadLetter, 'readings'> {
  readonly replica: string;
  readonly readingCount: number;
}

/** The `deadletters` command. */
export function deadLettersCommand(): Command {
  const cmd = new Command('deadletters').description('fetch results storage refused as invalid, kept by each ingestion replica: list and replay them');
  cmd
    .command('list')
    .description('list the dead letters of every replica (oldest first)')
    .option('--state-dir <dir>', 'state folder of the local stack', DEFAULT_STATE_DIR)
    .option('--replica <name>', 'only this replica (such as ingestion-0)')
    .option('--json', 'one JSON document for scripts')
    .action((o: { stateDir: string; replica?: string; json?: boolean }) => {
      const listed: Listed[] = [];
      for (const { replica, file } of outboxes(o.stateDir)) {
        if (o.replica !== undefined && replica !== o.replica) continue;
        for (const d of withOutbox(file, (box) => box.deadLetters(100_000))) {
          listed.push({ replica, id: d.id, flatId: d.flatId, fetchedAtMs: d.fetchedAtMs, reason: d.reason, readingCount: d.readings.length });
        }
      }
      if (o.json) {
        process.stdout.write(`${JSON.stringify({ deadLetters: listed, readings: listed.reduce((n, d) => n + d.readingCount, 0) })}\n`);
        return;
      }
      if (listed.length === 0) {
        process.stdout.write('no dead letters\n');
        return;
      }
      for (const d of listed) {
        process.stdout.write(`${d.replica}  #${d.id}  flat ${d.flatId}  fetched ${new Date(d.fetchedAtMs).toISOString()}  ${d.readingCount} readings  ${d.reason}\n`);
      }
      process.stdout.write(`${listed.length} dead letters, ${listed.reduce((n, d) => n + d.readingCount, 0)} readings\n`);
    });
  cmd
    .command('replay')
    .description('move dead letters back into their replica\'s outbox, so it sends them to storage again (all, or --ids of one --replica)')
    .option('--state-dir <dir>', 'state folder of the local stack', DEFAULT_STATE_DIR)
    .option('--replica <name>', 'only this replica (required with --ids: ids are per replica)')
    .option('--ids <ids>', 'comma-separated dead-letter ids, as list shows them', ids)
    .action((o: { stateDir: string; replica?: string; ids?: number[] }) => {
      if (o.ids !== undefined && o.replica === undefined) {
        process.stderr.write('flatline deadletters replay: --ids needs --replica (ids are per replica)\n');
        process.exitCode = 2;
        return;
      }
      let moved = 0;
      for (const { replica, file } of outboxes(o.stateDir)) {
        if (o.replica !== undefined && replica !== o.replica) continue;
        const n = withOutbox(file, (box) => box.replayDeadLetters(o.ids));
        if (n > 0) process.stdout.write(`${replica}: ${n} dead letters back in the outbox\n`);
        moved += n;
      }
      process.stdout.write(`${moved} dead letters replayed\n`);
    });
  return cmd;
}
