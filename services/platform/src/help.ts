/** `--help` for service entry points: what the service does and the variables it reads. */
import { describeEnv, EXIT_CONFIG, type Variable } from './config.ts';

/** Whether the command line asks for help. */
export function helpRequested(argv: readonly string[] = process.argv.slice(2)): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

/** Prints the service's usage: its purpose and every environment variable with its default. */
export function printHelp(name: string, purpose: string, spec: Record<string, Variable<unknown>>): void {
  process.stdout.write(
    `usage: ${name} [--help]\n\n${purpose}\n\nConfigured by environment variables (unset or empty means the default):\n${describeEnv(spec)}\n\n` +
      `Exits ${EXIT_CONFIG} naming the variable when a value is bad; stops gracefully on SIGTERM or SIGINT.\n`,
  );
}
