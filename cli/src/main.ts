/** The `flatline` command. */
import { Command } from 'commander';
import { upCommand } from './commands/up.ts';

const program = new Command('flatline')
  .description('flatline: collects the readings of the meters in flats, and proves with chaos experiments that it keeps doing so')
  .showHelpAfterError()
  .addCommand(upCommand());

await program.parseAsync(process.argv);
