/**
 * `flatline bench`: every benchmark suite of bench/src/ (or those named
 * with --only), one table of headline figures — flatline next to its peer or
 * floor measured in the same run, the ratio and the goal — then each suite's
 * detail tables and notes; the whole run as JSON (with the machine's cores,
 * memory and tool versions) into bench-results/. No test asserts on these
 * figures; npm test runs `bench --quick --dry` so the command cannot rot.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { REPO_ROOT, TOOLS_BIN, stopEveryChild } from '@flatline/stack';
import { SUITES, markdownTable, type BenchContext, type Figure, type SuiteResult } from '@flatline/bench';

interface BenchOptions {
  only: string[] | undefined;
  quick: boolean;
  dry: boolean;
  keep: boolean;
  out: string;
  flats?: number;
  minutes?: number;
  repeats?: number;
  day?: number;
}

const say = (line: string): void => void process.stderr.write(`[bench] ${line}\n`);

function onlyList(value: string): string[] {
  const names = value.split(',').filter(Boolean);
  const unknown = names.filter((n) => !SUITES.some((s) => s.name === n));
  if (unknown.length > 0) throw new InvalidArgumentError(`unknown suite(s) ${unknown.join(', ')}; suites: ${SUITES.map((s) => s.name).join(', ')}`);
  return names;
}

/** A whole number at least 1, for --flats, --minutes, --repeats and --day. */
function positive(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a whole number of at least 1, got ${JSON.stringify(value)}`);
  return n;
}

function version(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10000 }).split('\n')[0]!.trim();
  } catch {
    return 'absent';
  }
}

/** The machine, for the JSON: figures from another machine (or another load) are not comparable. */
function machine(): Record<string, unknown> {
  return {
    cores: cpus().length,
    cpu: cpus()[0]?.model,
    memoryGb: +(totalmem() / 2 ** 30).toFixed(1),
    freeGb: +(freemem() / 2 ** 30).toFixed(1),
    loadAverage: loadavg(),
    node: process.version,
    ferretdb: 'v1.24.2',
    haproxy: version(join(TOOLS_BIN, 'haproxy'), ['-v']),
  };
}

function fmtRatio(f: Figure): string {
  return f.ratio === undefined || !Number.isFinite(f.ratio) ? '' : `${f.ratio.toFixed(2)}×`;
}

function fmtMet(f: Figure): string {
  return f.met === undefined ? '' : f.met ? 'met' : 'NOT met';
}

/** The `bench` command. */
export function benchCommand(): Command {
  return new Command('bench')
    .description('benchmark flatline next to the tools a user would pick instead and the physical floors, in one run (prints one table, writes JSON)')
    .option('--only <suites>', `run only these suites, comma-separated (${SUITES.map((s) => s.name).join(', ')})`, onlyList)
    .option('--quick', 'a short run: small sizes, short windows, one repeat', false)
    .option('--dry', 'print the plan of each suite and exit (npm test runs this, so the command cannot rot)', false)
    .option('--keep', "keep each stack's state folder and logs", false)
    .option('--out <dir>', 'folder for the JSON results', join(REPO_ROOT, 'bench-results'))
    .option('--flats <n>', 'flats of the scale suite (default 10000; 2000 with --quick)', positive)
    .option('--minutes <n>', 'minutes the scale suite watches the stack (default 10; 2 with --quick)', positive)
    .option('--repeats <n>', 'repeats of the scale suite (default 3; 1 with --quick)', positive)
    .option('--day <flats>', 'range-reads at a day of <flats> flats × 3 devices × a reading a second, fetched every 5 s, as fetch documents only (100: the 26 million readings of issue [P]; loading takes minutes)', positive)
    .addHelpText('after', `\nSuites:\n${SUITES.map((s) => `  ${s.name.padEnd(12)} ${s.title}`).join('\n')}`)
    .action(async (o: BenchOptions) => {
      const sizes = { ...(o.flats === undefined ? {} : { flats: o.flats }), ...(o.minutes === undefined ? {} : { minutes: o.minutes }), ...(o.repeats === undefined ? {} : { repeats: o.repeats }), ...(o.day === undefined ? {} : { day: o.day }) };
      const ctx: BenchContext = { quick: o.quick, keep: o.keep, say, sizes };
      const suites = SUITES.filter((s) => o.only === undefined || o.only.includes(s.name));
      if (o.dry) {
        for (const s of suites) process.stdout.write(`bench plan: ${s.name}: ${s.plan(ctx)}\n`);
        return;
      }
      // Interrupted (Ctrl-C, SIGTERM from a runner's timeout): the suites' own cleanup would not run, and their
      // stacks (PostgreSQL, FerretDB, the services, Prometheus) would keep running and holding ports and cores.
      let interrupted = false;
      const onSignal = (signal: NodeJS.Signals): void => {
        if (interrupted) return;
        interrupted = true;
        say(`${signal}: stopping every process the bench started…`);
        void stopEveryChild(5000).then(
          (names) => {
            say(`stopped ${names.length === 0 ? 'nothing (none was running)' : names.join(', ')}; no figures written`);
            process.exit(signal === 'SIGINT' ? 130 : 143);
          },
          (err: unknown) => {
            say(`could not stop everything: ${(err as Error).message}`);
            process.exit(1);
          },
        );
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      const results: Array<{ suite: string; result?: SuiteResult; error?: string; seconds: number }> = [];
      for (const s of suites) {
        say(`${s.name}: ${s.plan(ctx)}`);
        const started = Date.now();
        try {
          results.push({ suite: s.name, result: await s.run(ctx), seconds: (Date.now() - started) / 1000 });
        } catch (err) {
          say(`${s.name}: failed: ${(err as Error).message}`);
          results.push({ suite: s.name, error: (err as Error).message, seconds: (Date.now() - started) / 1000 });
          process.exitCode = 1;
        }
      }
      const rows = results.flatMap((r) =>
        r.result === undefined
          ? [[r.suite, `failed: ${r.error ?? ''}`, '', '', '', '']]
          : r.result.skipped !== undefined
            ? [[r.suite, `skipped: ${r.result.skipped}`, '', '', '', '']]
            : r.result.figures.map((f) => [r.suite, f.name, f.flatline, f.versus, fmtRatio(f), f.goal ?? '', fmtMet(f)]),
      );
      const out: string[] = [markdownTable(['suite', 'figure', 'flatline', 'versus', 'ratio', 'goal', ''], rows), ''];
      for (const r of results) {
        for (const d of r.result?.details ?? []) out.push(`${d.title}:`, markdownTable(d.head, d.rows), '');
        for (const n of r.result?.notes ?? []) out.push(`- ${n}`);
      }
      process.stdout.write(`${out.join('\n')}\n`);
      mkdirSync(o.out, { recursive: true });
      const file = join(o.out, `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
      const versions = Object.assign({}, ...results.map((r) => r.result?.versions ?? {})) as Record<string, string>;
      writeFileSync(file, JSON.stringify({ machine: { ...machine(), ...versions }, quick: o.quick, results }, null, 2));
      process.stdout.write(`written: ${file}\n`);
    });
}
