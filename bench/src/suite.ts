/**
 * The benchmark suites of `flatline bench`. Each suite measures flatline next
 * to what a user would pick instead (Prometheus, raw driver calls) or a
 * physical floor (a trivial grpc-js handler, wrk against the simulator), in
 * the same run on the same machine, and reports ratios: these machines are
 * shared and noisy, so an absolute time from another run means nothing.
 * Benchmarks print figures; no test asserts on them.
 */

/** What a suite gets. */
export interface BenchContext {
  /** A short run (fewer flats, shorter windows, one repeat): for a smoke test and for development. */
  readonly quick: boolean;
  /** Keep state folders and logs of the stacks a suite starts. */
  readonly keep: boolean;
  /** Progress lines (on stderr). */
  readonly say: (line: string) => void;
  /** Sizes from the command line: --flats, --minutes, --repeats the scale suite's, --day range-reads' (flats of a day at a reading a second); the others keep their plans. */
  readonly sizes?: { readonly flats?: number; readonly minutes?: number; readonly repeats?: number; readonly day?: number };
}

/** One headline figure: flatline's value next to its peer or floor, the ratio, and the goal. */
export interface Figure {
  /** What is measured, e.g. "ingestion CPU per poll, 1000 flats (repeat 2)". */
  readonly name: string;
  /** flatline's value, with its unit, e.g. "0.54 ms". */
  readonly flatline: string;
  /** The peer's or floor's value, with its unit ('' when there is none). */
  readonly versus: string;
  /** flatline / versus (or the figure's own ratio); undefined when not measurable. */
  readonly ratio?: number;
  /** The goal, e.g. "≤ 1.0× Prometheus". */
  readonly goal?: string;
  /** Whether the goal is met; undefined without a goal or a value. */
  readonly met?: boolean;
}

/** A detail table of a suite (every repeat, every measurement). */
export interface DetailTable {
  readonly title: string;
  readonly head: readonly string[];
  readonly rows: ReadonlyArray<readonly string[]>;
}

/** What a suite found. */
export interface SuiteResult {
  readonly figures: readonly Figure[];
  readonly details: readonly DetailTable[];
  /** Caveats printed under the table (e.g. Prometheus scrapes with one shared credential). */
  readonly notes: readonly string[];
  /** Raw numbers for the JSON file. */
  readonly raw?: unknown;
  /** Versions of the tools it used, e.g. { prometheus: '2.42.0' }. */
  readonly versions?: Readonly<Record<string, string>>;
  /** Set when the suite could not run here (e.g. a tool could not be installed): why. */
  readonly skipped?: string;
}

/** A benchmark suite. */
export interface BenchSuite {
  /** Short name for --only, e.g. "polling". */
  readonly name: string;
  /** One line: what it compares. */
  readonly title: string;
  /** What a run would do (printed by --dry, which npm test runs so a suite cannot rot unnoticed). */
  plan(ctx: BenchContext): string;
  run(ctx: BenchContext): Promise<SuiteResult>;
}

/** Formats a table in Markdown with aligned columns. */
export function markdownTable(head: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: readonly string[]): string => `| ${widths.map((w, i) => (cells[i] ?? '').padEnd(w)).join(' | ')} |`;
  return [fmt(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(fmt)].join('\n');
}

/** The value at a percentage (0–100) of values, nearest rank; NaN when empty. */
export function percentile(values: readonly number[], percent: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((percent / 100) * sorted.length) - 1))]!;
}

/** Sleeps ms milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
