/**
 * Resilience figures: how little the healthy flats' freshness moves when 10 %
 * of the devices answer 30 s late (p99 with the fault ÷ p99 without, same
 * stack, same run), and how a 60 s database outage ends: the time from the
 * database's return to every flat being fresh again, and how much faster the
 * outboxes drain than readings arrive.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFaultFile, scenario } from '@flatline/mesh';
import { flatIds } from '@flatline/platform';
import { freshnessReport, scrapeText, sumMetric, FREE_PORTS, LocalStack } from '@flatline/stack';
import { percentile, sleep, type BenchContext, type BenchSuite, type Figure, type SuiteResult } from './suite.ts';

interface Settings {
  flats: number;
  intervalMs: number;
  windowMs: number;
  outageMs: number;
}

function settings(ctx: BenchContext): Settings {
  return ctx.quick ? { flats: 100, intervalMs: 5000, windowMs: 15000, outageMs: 15000 } : { flats: 1000, intervalMs: 5000, windowMs: 40000, outageMs: 60000 };
}

/** The healthy flats' p99 age, sampled once a second over windowMs, and the median of those samples. */
async function healthyP99Samples(stack: LocalStack, exclude: string[], windowMs: number, say: (l: string) => void, label: string): Promise<{ medianP99: number; samples: number[] }> {
  const samples: number[] = [];
  const end = Date.now() + windowMs;
  while (Date.now() < end) {
    const r = await freshnessReport(stack.queryAddress, { excludeFlatIds: exclude, limit: 0 }).catch(() => undefined);
    if (r !== undefined) samples.push(r.p99AgeSeconds);
    say(`resilience: ${label}, ${Math.ceil((end - Date.now()) / 1000)} s left (p99 ${r?.p99AgeSeconds.toFixed(2) ?? '?'} s)`);
    await sleep(1000);
  }
  return { medianP99: percentile(samples, 50), samples };
}

async function counters(stack: LocalStack): Promise<{ fetched: number; forwarded: number; outbox: number }> {
  const text = await scrapeText(stack.ingestion[0]!.metrics);
  return {
    fetched: sumMetric(text, 'flatline_ingestion_readings_total'),
    forwarded: sumMetric(text, 'flatline_ingestion_forwarded_readings_total'),
    outbox: sumMetric(text, 'flatline_ingestion_outbox_fetches'),
  };
}

async function run(ctx: BenchContext): Promise<SuiteResult> {
  const s = settings(ctx);
  const dir = mkdtempSync(join(tmpdir(), 'flatline-bench-resilience-'));
  ctx.say(`resilience: starting the stack (${s.flats} flats, ${s.intervalMs / 1000} s interval, one ingestion replica) in ${dir}`);
  const stack = await LocalStack.start({
    stateDir: dir,
    host: '127.0.0.1',
    ports: FREE_PORTS,
    flats: s.flats,
    intervalMs: s.intervalMs,
    replicas: 1,
    logLevel: 'warn',
    env: { devices: { FLATLINE_DEVICES_PERIOD_MS: '5000' } },
  });
  try {
    const warmEnd = Date.now() + 120000;
    while (Date.now() < warmEnd) {
      const r = await freshnessReport(stack.queryAddress, { limit: 0 }).catch(() => undefined);
      if (r?.flatCount === s.flats && r.worstAgeSeconds < 20) break;
      ctx.say(`resilience: warming up, ${r?.flatCount ?? 0} of ${s.flats} flats fetched`);
      await sleep(2000);
    }
    // 1. Freshness of the healthy flats with and without 10 % of the flats 30 s late.
    const slow = flatIds(s.flats).filter((_, i) => i % 10 === 0);
    const without = await healthyP99Samples(stack, slow, s.windowMs, ctx.say, 'no fault');
    const fault = scenario('devices-slow')!.build({ flats: slow, delayMs: 30000 });
    writeFaultFile(stack.faultsFile, [fault]);
    await sleep(2 * s.intervalMs);
    const withFault = await healthyP99Samples(stack, slow, s.windowMs, ctx.say, `${slow.length} flats 30 s late`);
    writeFaultFile(stack.faultsFile, []);
    await sleep(2 * s.intervalMs);

    // 2. A database outage (frozen: connections stay open, nothing answers).
    const before = await counters(stack);
    const t0 = Date.now();
    // The outbox is rarely empty under a steady ingest: "drained" means back to
    // the largest size it had in the steady state before the outage.
    let steadyOutbox = before.outbox;
    while (Date.now() - t0 < s.windowMs / 2) {
      await sleep(500);
      steadyOutbox = Math.max(steadyOutbox, (await counters(stack)).outbox);
    }
    const steady = await counters(stack);
    const ingestRate = (steady.fetched - before.fetched) / ((Date.now() - t0) / 1000);
    ctx.say(`resilience: freezing the database for ${s.outageMs / 1000} s`);
    stack.db.process.signal('SIGSTOP');
    await sleep(s.outageMs);
    const atThaw = await counters(stack);
    stack.db.process.signal('SIGCONT');
    const thawedAt = Date.now();
    let recoveredMs: number | undefined;
    let drainedMs: number | undefined;
    // The drain starts when storage first acknowledges again (its database
    // watch and the forwarder's backoff take a moment to notice): the rate is
    // measured from there, the delay reported on its own.
    let drainStartMs: number | undefined;
    let drainForwarded = 0;
    while (Date.now() - thawedAt < 180000 && (recoveredMs === undefined || drainedMs === undefined)) {
      const c = await counters(stack).catch(() => undefined);
      if (drainStartMs === undefined && c !== undefined && c.forwarded > atThaw.forwarded) drainStartMs = Date.now() - thawedAt;
      if (drainedMs === undefined && c !== undefined && c.outbox <= steadyOutbox && drainStartMs !== undefined) {
        drainedMs = Date.now() - thawedAt;
        drainForwarded = c.forwarded - atThaw.forwarded;
      }
      const r = await freshnessReport(stack.queryAddress, { limit: 0 }, 2000).catch(() => undefined);
      if (recoveredMs === undefined && r !== undefined && r.worstAgeSeconds < 20 && r.neverFetchedCount === 0) recoveredMs = Date.now() - thawedAt;
      await sleep(100);
    }
    const drainRate = drainedMs === undefined || drainStartMs === undefined ? undefined : drainForwarded / Math.max(0.1, (drainedMs - drainStartMs) / 1000);
    const ratio = without.medianP99 > 0 ? withFault.medianP99 / without.medianP99 : undefined;
    const figures: Figure[] = [
      {
        name: `healthy-flat freshness p99 (median of 1 s samples), 10 % of ${s.flats} flats 30 s late ÷ no fault`,
        flatline: `${withFault.medianP99.toFixed(2)} s`,
        versus: `${without.medianP99.toFixed(2)} s`,
        ...(ratio !== undefined ? { ratio, met: ratio <= 1.05 } : {}),
        goal: '≤ 1.05×',
      },
      {
        name: `time from the end of a ${s.outageMs / 1000} s database outage to every flat fresh`,
        flatline: recoveredMs === undefined ? 'not within 180 s' : `${(recoveredMs / 1000).toFixed(1)} s`,
        versus: '',
        goal: '≤ 10 s',
        ...(recoveredMs !== undefined ? { met: recoveredMs <= 10000 } : { met: false }),
      },
      {
        name: 'outbox drain rate ÷ ingest rate',
        flatline: drainRate === undefined ? 'not drained' : `${drainRate.toFixed(0)} readings/s`,
        versus: `${ingestRate.toFixed(0)} readings/s`,
        ...(drainRate !== undefined && ingestRate > 0 ? { ratio: drainRate / ingestRate, met: drainRate / ingestRate >= 10 } : {}),
        goal: '≥ 10×',
      },
    ];
    return {
      figures,
      details: [
        {
          title: 'resilience',
          head: ['measure', 'value'],
          rows: [
            ['flats / slow flats', `${s.flats} / ${slow.length}`],
            ['healthy p99 (median of 1 s samples) without / with the fault', `${without.medianP99.toFixed(2)} s / ${withFault.medianP99.toFixed(2)} s`],
            ['outbox at the end of the outage (steady state before: at most)', `${atThaw.outbox} (${steadyOutbox}) fetch results`],
            ['fresh again after', recoveredMs === undefined ? '-' : `${(recoveredMs / 1000).toFixed(1)} s`],
            ['storage acknowledged again after', drainStartMs === undefined ? '-' : `${(drainStartMs / 1000).toFixed(1)} s`],
            ['outbox back to its steady size after', drainedMs === undefined ? '-' : `${(drainedMs / 1000).toFixed(1)} s (${drainForwarded} readings)`],
          ],
        },
      ],
      notes: [
        'Resilience: the freshness ratio compares the median over the window of the per-second p99 of healthy flats; the outage freezes FerretDB (SIGSTOP); drain rate = readings storage acknowledged from its first acknowledgement after the database\'s return until the outbox was back to its steady size (its gauge is updated once a second, so short drains read slow), ÷ that time.',
      ],
      raw: { settings: s, without, withFault, ingestRate, steadyOutbox, atThaw, recoveredMs, drainStartMs, drainedMs, drainForwarded },
    };
  } finally {
    stack.db.process.signal('SIGCONT');
    await stack.stop();
    if (ctx.keep) ctx.say(`resilience: kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

/** The resilience suite. */
export const resilienceSuite: BenchSuite = {
  name: 'resilience',
  title: 'freshness with 10 % of devices 30 s late ÷ without; recovery from a database outage; outbox drain ÷ ingest',
  plan: (ctx) => {
    const s = settings(ctx);
    return `${s.flats} flats at ${s.intervalMs / 1000} s: healthy p99 over ${s.windowMs / 1000} s without and with devices-slow (30 s) on 10 % of the flats; then FerretDB frozen ${s.outageMs / 1000} s: time to every flat fresh, drain rate ÷ ingest rate`;
  },
  run,
};
