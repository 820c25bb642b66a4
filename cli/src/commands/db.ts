/** `flatline db`: make the local stack's database unreachable and bring it back, as a chaos action. */
import { Command } from 'commander';
import { DEFAULT_STATE_DIR, recordEvent, requireStack } from '@flatline/stack';

function signalDatabase(stateDir: string, signal: NodeJS.Signals, what: string): void {
  const stack = requireStack(stateDir);
  if (stack === undefined) return;
  const pid = stack.databasePid;
  if (pid === undefined) {
    process.stderr.write(`flatline db: the stack in ${stateDir} did not record its database\n`);
    process.exitCode = 2;
    return;
  }
  try {
    process.kill(pid, signal);
    process.stdout.write(`database (pid ${pid}) ${what}\n`);
    recordEvent(stateDir, signal === 'SIGSTOP' ? 'inject' : 'remove', 'database', `${what} (pid ${pid})`);
  } catch (err) {
    process.stderr.write(`flatline db: cannot signal pid ${pid}: ${(err as Error).message}\n`);
    process.exitCode = 2;
  }
}

/** The `db` command. */
export function dbCommand(): Command {
  const cmd = new Command('db').description('make the local database unreachable (frozen: connections stay open, nothing answers) and bring it back');
  cmd
    .command('freeze')
    .description('SIGSTOP the database: like a hung VM or a black-holed network')
    .option('--state-dir <dir>', 'state folder of the local stack', DEFAULT_STATE_DIR)
    .action((o: { stateDir: string }) => signalDatabase(o.stateDir, 'SIGSTOP', 'frozen'));
  cmd
    .command('thaw')
    .description('SIGCONT the database')
    .option('--state-dir <dir>', 'state folder of the local stack', DEFAULT_STATE_DIR)
    .action((o: { stateDir: string }) => signalDatabase(o.stateDir, 'SIGCONT', 'thawed'));
  return cmd;
}
