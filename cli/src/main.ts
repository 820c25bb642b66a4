/**
 * The `flatline` command. A command's module (and what it imports: the
 * stack, the benchmarks, gRPC clients) is loaded only when that command
 * runs, so `flatline --help` and the quick commands start fast.
 */
import { Command } from 'commander';
import { COMMANDS } from './commands.ts';

const program = new Command('flatline')
  .description('flatline: collects the readings of the meters in flats, and proves with chaos experiments that it keeps doing so')
  .showHelpAfterError();

// `flatline <command> …` and `flatline help <command>` need that command whole; anything else (--help, a typo) only the list.
const args = process.argv.slice(2);
const named = args[0] === 'help' ? args[1] : args[0];
const entry = COMMANDS.find((c) => c.name === named);
for (const c of COMMANDS) {
  if (c === entry) program.addCommand((await c.load()).summary(c.summary));
  else program.command(c.name).summary(c.summary).description(c.summary);
}

// A reader that went away (a closed pipe: the terminal or the test runner that started us is gone) must not
// kill a command between its lines: a chaos run or a campaign still has to heal its faults and stop its stack.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
}

await program.parseAsync(process.argv);
// A command other than `up` (which runs until Ctrl-C and exits itself) is done once its action resolved: exit,
// whatever a library still holds open. Seen: after `chaos run` stopped the stack it started on the Istio plane,
// grpc-js-xds kept redialling the stopped istiod (a TCP socket and a timer), and the run never exited (killed
// after 240 s by the test that caught it; test/chaos-controls.test.ts, H2 with a single replica).
if (entry?.name !== 'up') process.exit();
