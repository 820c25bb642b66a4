/**
 * `flatline chaos run <experiment>`: one chaos experiment end to end. Starts
 * the local stack when none runs, runs the real `chaos run` (rollbacks always,
 * the steady state checked continuously with fail-fast), samples the
 * freshness of the healthy flats once a second meanwhile, then sweeps away
 * any fault or failed node a rollback missed (also after Ctrl-C) and writes
 * reports/<time>-<experiment>/: the journal, report.md, freshness.png and
 * verdict.json.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_STATE_DIR, REPO_ROOT, TOOLS_BIN, callSupervisor, readEvents, readStackFile, DEFAULT_PORTS } from '@flatline/stack';
import { FreshnessReport } from '@flatline/proto';
import { duration } from './up.ts';
import { campaignCommand } from './campaign.ts';
import { keepSupervising, stackChoiceOptions, say, sweep, timestamp, useOrStartStack, type StackChoice } from './chaos-common.ts';

const CHAOS_DIR = join(REPO_ROOT, 'chaos');
/** The experiment folders under chaos/. */
export function experiments(): string[] {
  return readdirSync(CHAOS_DIR, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(CHAOS_DIR, d.name, 'experiment.json')))
    .map((d) => d.name)
    .sort();
}

/** An experiment.json from a path, a folder under chaos/, or a unique part of a folder's name. */
export function resolveExperiment(name: string): string {
  for (const candidate of [name, join(name, 'experiment.json'), join(CHAOS_DIR, name, 'experiment.json')]) {
    if (existsSync(candidate) && candidate.endsWith('.json')) return resolve(candidate);
  }
  const matches = experiments().filter((e) => e.includes(name.replace(/…$/, '')));
  if (matches.length === 1) return join(CHAOS_DIR, matches[0]!, 'experiment.json');
  throw new InvalidArgumentError(matches.length === 0 ? `no experiment matches ${JSON.stringify(name)}; see: flatline chaos list` : `${JSON.stringify(name)} matches ${matches.join(', ')}: say which`);
}

export interface Experiment {
  title: string;
  tags?: string[];
  configuration?: Record<string, unknown>;
}

/**
 * The value of a configuration key as Chaos Toolkit reads it
 * (chaoslib/configuration.py load_configuration): --var wins; an
 * `{"type":"env","key":K,"default":D}` entry is the variable K of env when it
 * is set (even to ''), else D (nothing without one); any other value is itself.
 * env is the environment the real `chaos run` inherits.
 */
export function configValue(experiment: Experiment, vars: Record<string, string>, key: string, env: Readonly<Record<string, string | undefined>>): string | undefined {
  if (vars[key] !== undefined) return vars[key];
  const c = experiment.configuration?.[key];
  if (typeof c === 'string' || typeof c === 'number') return String(c);
  if (typeof c !== 'object' || c === null) return undefined;
  const entry = c as { type?: unknown; key?: unknown; default?: unknown };
  if (entry.type === 'env' && typeof entry.key === 'string') {
    const value = env[entry.key];
    if (value !== undefined) return value;
  }
  return 'default' in entry && entry.default !== undefined && entry.default !== null ? String(entry.default) : undefined;
}

const keyValue = (value: string, previous: Record<string, string> = {}): Record<string, string> => {
  const i = value.indexOf('=');
  if (i <= 0) throw new InvalidArgumentError('expected key=value');
  return { ...previous, [value.slice(0, i)]: value.slice(i + 1) };
};

interface RunOptions extends StackChoice {
  stateDir: string;
  var: Record<string, string>;
  frequency: number;
  reports: string;
  keepStack: boolean;
}

/** Samples the worst healthy-flat freshness once a second into timeline.jsonl until stopped. */
function sampleFreshness(stateDir: string, exclude: string[], file: string): () => Promise<void> {
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const started = Date.now();
      const supervisor = readStackFile(stateDir)?.supervisor;
      const sample: Record<string, unknown> = { t: new Date().toISOString() };
      try {
        if (supervisor === undefined) throw new Error('no stack');
        // Through the supervisor, as the experiments' probes ask: on the Istio plane its query client is an xDS
        // client (query's routes and faults from istiod), on the local plane it applies the fault file's.
        const { status, body } = await callSupervisor(supervisor, '/freshness', { exclude: exclude.join(',') || undefined, limit: '0' }, 2500);
        if (status !== 200 && status !== 409) throw new Error(`answered ${status}`);
        const r = FreshnessReport.fromJSON(body);
        Object.assign(sample, { worst_healthy_age_s: r.worstAgeSeconds, p99_healthy_age_s: r.p99AgeSeconds, query_ok: true, flats: r.flatCount, never_fetched: r.neverFetchedCount });
      } catch {
        Object.assign(sample, { worst_healthy_age_s: null, p99_healthy_age_s: null, query_ok: false });
      }
      appendFileSync(file, `${JSON.stringify(sample)}\n`);
      await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - started))));
    }
  })();
  return async () => {
    stopped = true;
    await loop;
  };
}

/** Runs the real chaos in its own process group (so Ctrl-C reaches it once, from us); resolves with its exit code. */
function runChaos(args: string[], onSigint: () => void): Promise<number> {
  const child = spawn(join(TOOLS_BIN, 'chaos'), args, { cwd: REPO_ROOT, stdio: 'inherit', detached: true });
  let interrupts = 0;
  const forward = (): void => {
    interrupts++;
    onSigint();
    if (interrupts === 1) {
      say('interrupted: Chaos Toolkit stops the method and runs the rollbacks (Ctrl-C again does not skip the sweep)…');
      child.kill('SIGINT');
    }
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  return new Promise((resolvePromise, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolvePromise(code ?? (signal === null ? 1 : 128));
    });
  });
}

async function run(name: string, o: RunOptions): Promise<void> {
  const experimentFile = resolveExperiment(name);
  const experimentName = basename(dirname(experimentFile));
  const experiment = JSON.parse(readFileSync(experimentFile, 'utf8')) as Experiment;
  const stateDir = resolve(o.stateDir);
  const started = new Date();
  // since: experiments check gaps only in readings taken during the run.
  const vars: Record<string, string> = { since: started.toISOString(), ...o.var, state_dir: stateDir };
  const dir = resolve(o.reports, `${timestamp(started)}-${experimentName}`);
  mkdirSync(dir, { recursive: true });

  const stack = await useOrStartStack(stateDir, o);

  // The experiments' probes ask the supervisor of this stack over HTTP (configuration supervisor_url).
  const supervisorUrl = stack?.supervisorUrl ?? readStackFile(stateDir)?.supervisor;
  if (supervisorUrl === undefined) {
    say(`the stack in ${stateDir} serves no supervisor probes (an older flatline started it): stop it and run again`);
    process.exitCode = 2;
    return;
  }
  vars.supervisor_url = supervisorUrl;

  // eslint-disable-next-line no-restricted-properties -- the environment runChaos passes on: what Chaos Toolkit reads
  const chaosEnv = process.env;
  const faulted = (configValue(experiment, vars, 'faulted_flats', chaosEnv) ?? '').split(',').filter(Boolean);
  const stopSampling = sampleFreshness(stateDir, faulted, join(dir, 'timeline.jsonl'));
  const journal = join(dir, 'journal.json');
  const args = ['--no-version-check', '--log-file', join(dir, 'chaostoolkit.log'), 'run', '--rollback-strategy', 'always'];
  // An experiment whose steady state cannot be asked during the fault (the
  // database itself is away) says so with this tag: checked before and after.
  const continuously = !(experiment.tags ?? []).includes('before-and-after');
  if (continuously) args.push('--hypothesis-strategy', 'continuously', '--hypothesis-frequency', String(o.frequency / 1000), '--fail-fast');
  else say('steady state checked before and after the method (tag before-and-after: it cannot be asked during the fault)');
  args.push('--journal-path', journal);
  for (const [k, v] of Object.entries(vars)) args.push('--var', `${k}=${v}`);
  args.push(experimentFile);
  writeFileSync(join(dir, 'run.json'), JSON.stringify({ experiment: relative(REPO_ROOT, experimentFile), vars, started: started.toISOString(), command: ['chaos', ...args], stackStartedHere: stack !== undefined, faultedFlats: faulted }, null, 2));
  say(`${experiment.title}`);
  say(`running: chaos ${args.join(' ')}`);
  let interrupted = false;
  let code = 1;
  try {
    code = await runChaos(args, () => (interrupted = true));
  } catch (err) {
    say(`cannot run Chaos Toolkit: ${(err as Error).message} (npm test or node scripts/bootstrap.mjs installs it)`);
  }
  // Ctrl-C from now on must not cut the sweep short.
  const ignore = (): void => say('still cleaning up; one moment…');
  process.on('SIGINT', ignore);
  await stopSampling();
  const leftovers = await sweep(stateDir);
  say(leftovers.length === 0 ? 'nothing left behind: no fault on, every node ready, the database running' : `the sweep undid what the run left behind: ${leftovers.join('; ')}`);
  writeFileSync(join(dir, 'sweep.json'), JSON.stringify({ found: leftovers }, null, 2));
  const events = readEvents(stateDir, new Date(started.getTime() - 1000));
  writeFileSync(join(dir, 'events.jsonl'), events.map((e) => `${JSON.stringify(e)}\n`).join(''));

  const maxAge = configValue(experiment, vars, 'max_age_seconds', chaosEnv) ?? '20';
  const verdict = await writeReport(dir, journal, maxAge);
  if (stack !== undefined && !o.keepStack) {
    say('stopping the stack it started…');
    await stack.stop();
  }
  process.off('SIGINT', ignore);
  const shown = relative(process.cwd(), dir) || dir;
  if (verdict === undefined) {
    say(`no report: chaos exited ${code} without a journal; see ${shown}/chaostoolkit.log`);
    process.exitCode = interrupted ? 130 : 1;
    if (stack !== undefined && o.keepStack) await keepSupervising(stack, stateDir);
    return;
  }
  say(`verdict: ${verdict.verdict.toUpperCase()}${verdict.reason ? ` (${verdict.reason})` : ''}`);
  say(`report: ${join(shown, 'report.md')}  plot: ${join(shown, 'freshness.png')}`);
  process.exitCode = interrupted ? 130 : verdict.verdict === 'passed' ? 0 : 1;
  if (stack !== undefined && o.keepStack) await keepSupervising(stack, stateDir);
}

/** What chaos/flatline_chaos/report.py decided. */
export interface Verdict {
  verdict: 'passed' | 'deviated' | 'failed';
  reason: string;
  status: string;
  deviated: boolean;
  steady_state_checks: number;
  steady_state_failures: number;
}

async function writeReport(dir: string, journal: string, maxAge: string): Promise<Verdict | undefined> {
  if (!existsSync(journal)) return undefined;
  const python = join(REPO_ROOT, '.venv', 'bin', 'python');
  const args = [join(CHAOS_DIR, 'flatline_chaos', 'report.py'), '--journal', journal, '--timeline', join(dir, 'timeline.jsonl'), '--events', join(dir, 'events.jsonl'), '--out', dir, '--max-age', maxAge];
  const code = await new Promise<number>((resolvePromise) => {
    const child = spawn(python, args, { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('error', () => resolvePromise(1));
    child.once('exit', (c) => resolvePromise(c ?? 1));
  });
  if (code !== 0 || !existsSync(join(dir, 'verdict.json'))) return undefined;
  return JSON.parse(readFileSync(join(dir, 'verdict.json'), 'utf8')) as Verdict;
}

/** The `chaos` command. */
export function chaosCommand(): Command {
  const cmd = new Command('chaos').description('run the chaos experiments of chaos/ with the real Chaos Toolkit, and report');
  cmd
    .command('list')
    .description('the experiments (folders of chaos/)')
    .action(() => {
      for (const e of experiments()) {
        const x = JSON.parse(readFileSync(join(CHAOS_DIR, e, 'experiment.json'), 'utf8')) as Experiment;
        process.stdout.write(`${e}\n    ${x.title}\n`);
      }
    });
  stackChoiceOptions(
    cmd
      .command('run <experiment>')
    .description(
      'run one experiment (a folder of chaos/, a unique part of its name, or a path to an experiment.json) against the local stack, ' +
        'starting one when none runs; write reports/<time>-<experiment>/ (journal.json, report.md, freshness.png, verdict.json); exit 0 only when it passed',
    )
    .option('--state-dir <dir>', 'state folder of the local stack (used if one runs there, else started there)', DEFAULT_STATE_DIR)
    .option('--var <key=value>', "set one of the experiment's configuration values (repeatable), e.g. --var fault_seconds=20", keyValue, {})
    .addOption(new Option('--frequency <duration>', 'how often the steady state is checked during the method').default(2000, '2s').argParser(duration))
    .option('--reports <dir>', 'where report folders go', join(REPO_ROOT, 'reports')),
    'run',
  )
    .addHelpText(
      'after',
      `\nExperiments: ${experiments().join(', ')}\nThe default ports of \`flatline up\` (query ${DEFAULT_PORTS.query}) are not used by a stack started here: it takes free ports, listed in <state-dir>/stack.json.`,
    )
    .action(async (experiment: string, o: RunOptions) => run(experiment, o));
  cmd.addCommand(campaignCommand());
  return cmd;
}
