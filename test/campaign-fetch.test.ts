/**
 * The fault campaign's fetch freshness can fail: a 1-minute campaign of
 * database and TCP faults (seed 8 keeps the database out of ingestion's reach
 * from +9.7 s to +48.7 s: a reset, two black holes and a kill overlapping)
 * against an ingestion that stops polling once its leases expire while the
 * lease database is away (FLATLINE_LEASE_ON_OUTAGE=release) fails on
 * fetch-fresh, and on nothing else. Query's freshness cannot see it: the
 * outage excuses every flat there. The real ingestion keeps every flat's last
 * fetch under 3 s through the same schedule (measured; the 3-minute campaign
 * in campaign.test.ts holds fetch-fresh on the real system in CI).
 */
import { expect } from 'chai';
import { join } from 'node:path';
import { tempDir } from '@flatline/stack';
import { campaign } from './support/campaign-run.ts';

describe('flatline chaos campaign: fetch freshness', function () {
  this.timeout(420000);
  const dir = tempDir('campaign-fetch');
  after(() => dir.cleanup());

  it('a database outage against an ingestion that lets its leases run out fails on fetch-fresh, found while it runs', async () => {
    const weakened = ['--env', 'ingestion:FLATLINE_LEASE_ON_OUTAGE=release', '--env', 'ingestion:FLATLINE_LEASE_TTL_MS=3000', '--env', 'ingestion:FLATLINE_LEASE_RENEW_MS=1000'];
    const o = await campaign(join(dir.path, 'reports'), join(dir.path, 'weak'), ['--faults', 'db,tcp', '--max-concurrent', '2', '--duration', '60s', '--seed', '8', '--fail-fast', ...weakened], 360000);
    // The outage the control needs is in the schedule: the database out of reach for at least 35 s.
    const hard = o.schedule.faults.filter((f) => (f.action.type === 'tcp' && ['db-blackhole', 'db-reset'].includes(f.action.scenario)) || (f.action.type === 'signal' && f.action.process === 'ferretdb'));
    expect(hard.map((f) => f.name)).to.include('db-blackhole');
    expect(o.code, o.stdout.slice(-4000)).to.equal(1);
    expect(o.verdict.verdict).to.equal('failed');
    expect(o.verdict.byInvariant['fetch-fresh'], JSON.stringify(o.verdict.byInvariant)).to.be.at.least(1);
    const others = Object.entries(o.verdict.byInvariant).filter(([k, n]) => k !== 'fetch-fresh' && n > 0);
    expect(others, 'only the weakened property fails').to.deep.equal([]);
    const first = o.timeline.find((e) => e.type === 'violation');
    expect(first?.invariant).to.equal('fetch-fresh');
    expect(first?.tMs, 'found during the outage').to.be.below(48_650);
  });
});
