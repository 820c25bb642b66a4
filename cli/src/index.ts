/** What other workspaces and tests use of the flatline command: its command table and the chaos configuration reader; the command runs from main.ts. */
export { COMMANDS, type CommandEntry } from './commands.ts';
export { configValue, experiments, resolveExperiment, type Experiment } from './commands/chaos.ts';
