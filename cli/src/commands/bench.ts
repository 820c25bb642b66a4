/**
 * `flatline bench`: what one ingestion process achieves on this machine. For
 * each flat count it starts the local stack (one ingestion replica, 5 s
 * interval), waits until every flat was fetched, then measures over a window:
 * completed polls per interval, healthy-flat freshness p50/p99, ingestion CPU
 * seconds per poll and its resident memory. Prints a table and writes JSON.
 * Benchmarks print figures; no test asserts on them.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, freemem, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { REPO_ROOT } from '../paths.ts';
import { cpuSeconds, rssBytes } from '../stack/proc-stats.ts';
import { FREE_PORTS, LocalStack } from '../stack/stack.ts';
import { freshnessReport, scrapeText, sumMetric } from '../stack/probes.ts';
import { duration, wholeNumber } from './up.ts';

interface BenchOptions {
  flats: number[];
  interval: number;
  devicePeriod: number;
  window: number;
  quick: boolean;
  dry: boolean;
  keep: boolean;
  out: string;
}

/** One row of the table. */
interface Row {
  flats: number;
  devicePeriodS: number;
  intervalS: number;
  windowS: number;
  pollsPerInterval: number;
  completedShare: number;
  freshnessP50S: number;
  freshnessP99S: number;
  ingestionCpuPerPollMs: number;
  ingestionRssMb: number;
  stackCpuPerPollMs: number;
  failedPolls: number;
  /** Fetch results still waiting in the outbox at the end: storage falling behind shows here. */
  outboxBacklog: number;
}

const say = (line: string): void => void process.stderr.write(`[bench] ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function measure(flats: number, o: BenchOptions): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), 'flatline-bench-'));
  say(`${flats} flats: starting the stack in ${dir}`);
  const stack = await LocalStack.start({
    stateDir: dir,
    host: '127.0.0.1',
    ports: FREE_PORTS,
    flats,
    intervalMs: o.interval,
    replicas: 1,
    logLevel: 'warn',
    env: { devices: { FLATLINE_DEVICES_PERIOD_MS: String(o.devicePeriod) } },
  });
  try {
    const ingestion = stack.ingestion[0]!;
    // Warm-up: until every flat was fetched once (its first answer carries a
    // whole window of readings), at most 2 minutes; then measure regardless.
    const warmEnd = Date.now() + Math.max(120000, 6 * o.interval);
    let fetched = 0;
    for (;;) {
      const r = await freshnessReport(stack.queryAddress).catch(() => undefined);
      fetched = r?.flatCount ?? 0;
      if (fetched === flats) break;
      if (Date.now() > warmEnd) {
        say(`${flats} flats: only ${fetched} fetched after the warm-up; measuring anyway`);
        break;
      }
      say(`${flats} flats: warming up, ${fetched} fetched so far`);
      await sleep(2000);
    }
    const pids = stack.processes().map((p) => p.pid!);
    const text0 = await scrapeText(ingestion.metrics);
    const ok0 = sumMetric(text0, 'flatline_ingestion_polls_total', 'outcome="ok"');
    const all0 = sumMetric(text0, 'flatline_ingestion_polls_total');
    const cpu0 = cpuSeconds(ingestion.process.pid!);
    const stackCpu0 = pids.reduce((s, p) => s + cpuSeconds(p), 0);
    const p50s: number[] = [];
    const p99s: number[] = [];
    let rss = 0;
    const end = Date.now() + o.window;
    while (Date.now() < end) {
      const r = await freshnessReport(stack.queryAddress);
      p50s.push(r.p50AgeSeconds);
      p99s.push(r.p99AgeSeconds);
      rss = Math.max(rss, rssBytes(ingestion.process.pid!));
      say(`${flats} flats: measuring, ${Math.ceil((end - Date.now()) / 1000)} s left (p99 ${r.p99AgeSeconds.toFixed(1)} s)`);
      await sleep(1000);
    }
    const text1 = await scrapeText(ingestion.metrics);
    const ok = sumMetric(text1, 'flatline_ingestion_polls_total', 'outcome="ok"') - ok0;
    const all = sumMetric(text1, 'flatline_ingestion_polls_total') - all0;
    const backlog = sumMetric(text1, 'flatline_ingestion_outbox_fetches');
    const cpu = cpuSeconds(ingestion.process.pid!) - cpu0;
    const stackCpu = pids.reduce((s, p) => s + cpuSeconds(p), 0) - stackCpu0;
    const intervals = o.window / o.interval;
    const sorted = [...p99s].sort((a, b) => a - b);
    return {
      flats,
      devicePeriodS: o.devicePeriod / 1000,
      intervalS: o.interval / 1000,
      windowS: o.window / 1000,
      pollsPerInterval: Math.round(ok / intervals),
      completedShare: ok / intervals / flats,
      freshnessP50S: p50s.reduce((a, b) => a + b, 0) / Math.max(1, p50s.length),
      freshnessP99S: sorted[Math.floor(sorted.length * 0.99)] ?? 0,
      ingestionCpuPerPollMs: (cpu / Math.max(1, ok)) * 1000,
      ingestionRssMb: rss / 2 ** 20,
      stackCpuPerPollMs: (stackCpu / Math.max(1, ok)) * 1000,
      failedPolls: all - ok,
      outboxBacklog: backlog,
    };
  } finally {
    say(`${flats} flats: stopping`);
    await stack.stop();
    if (o.keep) say(`${flats} flats: kept ${dir} (logs in ${join(dir, 'logs')})`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

function table(rows: Row[]): string {
  const head = ['flats', 'interval', 'polls/interval', 'completed', 'fresh p50', 'fresh p99', 'ingest CPU/poll', 'ingest RSS', 'stack CPU/poll', 'failed polls', 'outbox backlog'];
  const lines = rows.map((r) => [
    String(r.flats),
    `${r.intervalS} s`,
    String(r.pollsPerInterval),
    `${(r.completedShare * 100).toFixed(1)} %`,
    `${r.freshnessP50S.toFixed(2)} s`,
    `${r.freshnessP99S.toFixed(2)} s`,
    `${r.ingestionCpuPerPollMs.toFixed(3)} ms`,
    `${r.ingestionRssMb.toFixed(0)} MB`,
    `${r.stackCpuPerPollMs.toFixed(3)} ms`,
    String(r.failedPolls),
    String(r.outboxBacklog),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [fmt(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(fmt)].join('\n');
}

/** The `bench` command. */
export function benchCommand(): Command {
  return new Command('bench')
    .description('measure polling on this machine: polls per interval, freshness p50/p99, ingestion CPU per poll and RSS (prints a table, writes JSON)')
    .addOption(new Option('--flats <list>', 'flat counts to measure, comma-separated').default([1000, 10000], '1000,10000').argParser((v) => v.split(',').map(wholeNumber(1, 100000))))
    .addOption(new Option('--interval <duration>', 'poll interval').default(5000, '5s').argParser(duration))
    .addOption(new Option('--device-period <duration>', 'how often each simulated device takes a reading').default(5000, '5s').argParser(duration))
    .addOption(new Option('--window <duration>', 'measuring window after warm-up').default(30000, '30s').argParser(duration))
    .option('--quick', 'a short run: 200 flats, a 10 s window', false)
    .option('--dry', 'print the plan and exit (keeps the command from rotting in npm test)', false)
    .option('--keep', 'keep each run\'s state folder and logs', false)
    .option('--out <dir>', 'folder for the JSON results', join(REPO_ROOT, 'bench-results'))
    .action(async (o: BenchOptions) => {
      if (o.quick) {
        o.flats = [200];
        o.window = 10000;
      }
      const plan = `flats ${o.flats.join(', ')}; poll interval ${o.interval / 1000} s; a reading per device every ${o.devicePeriod / 1000} s; window ${o.window / 1000} s; one ingestion replica`;
      if (o.dry) {
        process.stdout.write(`bench plan: ${plan}\n`);
        return;
      }
      say(`plan: ${plan}`);
      const rows: Row[] = [];
      for (const n of o.flats) {
        try {
          rows.push(await measure(n, o));
        } catch (err) {
          say(`${n} flats: failed: ${(err as Error).message}`);
          process.exitCode = 1;
        }
      }
      const text = table(rows);
      process.stdout.write(`${text}\n`);
      mkdirSync(o.out, { recursive: true });
      const file = join(o.out, `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
      const machine = { cores: cpus().length, cpu: cpus()[0]?.model, memoryGb: totalmem() / 2 ** 30, freeGb: freemem() / 2 ** 30, node: process.version };
      writeFileSync(file, JSON.stringify({ machine, plan, rows }, null, 2));
      process.stdout.write(`written: ${file}\n`);
    });
}
