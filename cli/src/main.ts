/** The `flatline` command. */
import { Command } from 'commander';
import { benchCommand } from './commands/bench.ts';
import { chaosCommand } from './commands/chaos.ts';
import { drainedCommand, gapsCommand } from './commands/checks.ts';
import { dbCommand } from './commands/db.ts';
import { deadLettersCommand } from './commands/deadletters.ts';
import { faultCommand } from './commands/fault.ts';
import { freshnessCommand } from './commands/freshness.ts';
import { nodeCommand } from './commands/node.ts';
import { statusCommand } from './commands/status.ts';
import { upCommand } from './commands/up.ts';

const program = new Command('flatline')
  .description('flatline: collects the readings of the meters in flats, and proves with chaos experiments that it keeps doing so')
  .showHelpAfterError()
  .addCommand(upCommand())
  .addCommand(statusCommand())
  .addCommand(freshnessCommand())
  .addCommand(faultCommand())
  .addCommand(dbCommand())
  .addCommand(nodeCommand())
  .addCommand(gapsCommand())
  .addCommand(drainedCommand())
  .addCommand(deadLettersCommand())
  .addCommand(chaosCommand())
  .addCommand(benchCommand());

await program.parseAsync(process.argv);
