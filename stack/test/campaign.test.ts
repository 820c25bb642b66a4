/** The fault campaign's schedule (seeded, overlapping, never two faults on one thing) and the rules its invariants are read with. */
import { expect } from 'chai';
import { activeAt, CAMPAIGN_KINDS, conflicting, DEVICE_REACH, drawSchedule, excusedAt, fetchExcusedAt, FIRST_FAULT_MS, ingestionFrozenAt, layoutMismatch, persistentHoles, silencedAt, type CampaignFault, type CampaignLayout, type ScheduleOptions } from '../src/index.ts';

const TWO_NODES: CampaignLayout = {
  nodes: { 'node-a': ['ingestion-0', 'query-0', 'storage-0'], 'node-b': ['ingestion-1', 'query-1', 'storage-1'] },
  flats: Array.from({ length: 24 }, (_, i) => String(i + 1)),
  others: ['devices', 'haproxy', 'toxiproxy'],
};
const ONE_NODE: CampaignLayout = { nodes: { 'node-a': ['ingestion-0', 'query-0', 'storage-0'] }, flats: ['1', '2', '3'], others: ['devices'] };
const ALL: ScheduleOptions = { seed: 1, durationMs: 600000, maxConcurrent: 3, kinds: [...CAMPAIGN_KINDS] };

const fault = (over: Partial<CampaignFault>): CampaignFault => ({ id: 1, kind: 'http', name: 'f', action: { type: 'scenario', scenario: 'devices-slow', options: {} }, atMs: 0, healMs: 1000, holds: [], down: [], touches: [], cuts: [], ...over });

describe('campaign schedule', () => {
  it('is the same for the same seed, options and layout, and another for another seed', () => {
    const a = drawSchedule(ALL, TWO_NODES);
    expect(drawSchedule(ALL, TWO_NODES)).to.deep.equal(a);
    expect(JSON.parse(JSON.stringify(a))).to.deep.equal(a, 'survives schedule.json');
    const b = drawSchedule({ ...ALL, seed: 2 }, TWO_NODES);
    expect(b.faults.map((f) => f.name)).to.not.deep.equal(a.faults.map((f) => f.name));
  });

  for (const seed of [1, 2, 3, 14, 99]) {
    it(`seed ${seed}: at most maxConcurrent on at once, never two on the same thing, each healed in time`, () => {
      const s = drawSchedule({ ...ALL, seed }, TWO_NODES);
      expect(s.faults.length).to.be.at.least(40, '10 minutes hold many faults');
      expect(s.faults.map((f) => f.id)).to.deep.equal(s.faults.map((_, i) => i + 1));
      for (const f of s.faults) {
        expect(f.atMs).to.be.at.least(FIRST_FAULT_MS);
        expect(f.healMs).to.be.above(f.atMs).and.at.most(s.durationMs);
        // At each start, what is on (this one included).
        const on = activeAt(s, f.atMs);
        expect(on.length, `at +${f.atMs} ms`).to.be.at.most(s.maxConcurrent);
        for (const x of on) for (const y of on) if (x.id < y.id) for (const k of x.holds) expect(y.holds.some((h) => conflicting(h, k)), `${x.name} & ${y.name} conflict on ${k}`).to.equal(false);
      }
      expect(new Set(s.faults.map((f) => f.kind)).size, 'every kind drawn').to.equal(CAMPAIGN_KINDS.length);
      expect(s.faults.filter((f) => s.faults.some((g) => g.id < f.id && g.healMs > f.atMs)).length, 'faults overlap').to.be.above(5);
    });
  }

  it('never keeps a flat from being polled longer than its devices keep readings (the window, less the poll back-off): a loss by design is no finding', () => {
    // Seed 1 once froze Toxiproxy, slowed flat 15's device, froze Toxiproxy again: 50 s without a poll, and the
    // first poll after came up to 20 s later (back-off), past the devices' 60 s window: 8 readings a device gone at the source.
    for (let seed = 1; seed <= 20; seed++) {
      const s = drawSchedule({ ...ALL, seed, maxConcurrent: 2 }, TWO_NODES);
      for (const flat of TWO_NODES.flats) {
        const cuts = s.faults.filter((f) => f.cuts === 'all' || f.cuts.includes(flat)).sort((a, b) => a.atMs - b.atMs);
        let start = -Infinity;
        let end = -Infinity;
        for (const f of cuts) {
          // A flat may wait a whole back-off after a heal before its next poll: cuts closer than that are one.
          if (f.atMs > end + DEVICE_REACH.backoffMaxMs) start = f.atMs;
          end = Math.max(end, f.healMs);
          expect(end - start, `seed ${seed}, flat ${flat}: unpolled from +${start} to +${end} ms (fault #${f.id} ${f.name})`).to.be.at.most(DEVICE_REACH.maxUnpolledMs);
        }
      }
    }
    expect(DEVICE_REACH.maxUnpolledMs + DEVICE_REACH.backoffMaxMs).to.be.below(DEVICE_REACH.windowMs);
  });

  it('a fault that stops every poll of a flat says so: its device faults, the simulator, Toxiproxy, the last ingestion replica', () => {
    const s = drawSchedule({ ...ALL, maxConcurrent: 2 }, TWO_NODES);
    for (const f of s.faults) {
      const a = f.action;
      if (a.type === 'signal' && ['devices', 'toxiproxy'].includes(a.process)) expect(f.cuts, f.name).to.equal('all');
      if ((a.type === 'scenario' && a.scenario.startsWith('devices')) || (a.type === 'tcp' && a.scenario.startsWith('devices'))) expect(f.cuts, f.name).to.deep.equal(f.touches);
      if (a.type === 'scenario' && !a.scenario.startsWith('devices')) expect(f.cuts, f.name).to.deep.equal([]);
    }
  });

  it('keys conflict on the same thing, and a process with what needs it; faults that only use a process share it', () => {
    expect(conflicting('proc:storage-0', 'proc:storage-0')).to.equal(true);
    expect(conflicting('proc:toxiproxy', 'uses:toxiproxy')).to.equal(true);
    expect(conflicting('uses:toxiproxy', 'proc:toxiproxy')).to.equal(true);
    expect(conflicting('uses:toxiproxy', 'uses:toxiproxy')).to.equal(false);
    expect(conflicting('proc:toxiproxy', 'uses:devices')).to.equal(false);
    expect(conflicting('flat:1', 'flat:10')).to.equal(false);
  });

  it('never applies or heals a TCP fault while Toxiproxy, which applies it, is frozen or killed', () => {
    // Seed 2 froze Toxiproxy at +142 s and turned devices-tcp-slow on at +146.6 s: its API did not answer.
    for (let seed = 1; seed <= 20; seed++) {
      const s = drawSchedule({ ...ALL, seed }, TWO_NODES);
      const toxiproxy = s.faults.filter((f) => f.action.type === 'signal' && f.action.process === 'toxiproxy');
      for (const t of s.faults.filter((f) => f.action.type === 'tcp')) {
        for (const x of toxiproxy) expect(t.atMs >= x.healMs || t.healMs <= x.atMs, `seed ${seed}: #${t.id} ${t.name} and #${x.id} ${x.name} overlap`).to.equal(true);
      }
    }
  });

  it('draws only the kinds asked for; with maxConcurrent 1 nothing overlaps', () => {
    const s = drawSchedule({ ...ALL, kinds: ['tcp', 'db'], maxConcurrent: 1 }, TWO_NODES);
    expect(new Set(s.faults.map((f) => f.kind))).to.deep.equal(new Set(['tcp', 'db']));
    for (const f of s.faults) expect(activeAt(s, f.atMs)).to.have.length(1);
  });

  it('a replica fault excuses no flat while another replica of its service runs, and every flat when it takes the last', () => {
    const two = drawSchedule({ ...ALL, kinds: ['kill', 'stop', 'node'], maxConcurrent: 1 }, TWO_NODES);
    const replicaFaults = two.faults.filter((f) => f.down.length > 0);
    expect(replicaFaults.length).to.be.above(10);
    for (const f of replicaFaults) expect(f.touches, f.name).to.deep.equal([]);
    const one = drawSchedule({ ...ALL, kinds: ['kill', 'stop', 'node'] }, ONE_NODE);
    for (const f of one.faults.filter((x) => x.down.length > 0)) expect(f.touches, f.name).to.equal('all');
    // Two nodes, overlapping: a node failing while a replica on the other is down takes a service's last replica.
    const overlapping = drawSchedule({ ...ALL, kinds: ['kill', 'stop', 'node'], maxConcurrent: 2 }, TWO_NODES);
    const widened = overlapping.faults.filter((f) => f.down.length > 0 && f.touches === 'all');
    expect(widened.length, 'some overlap takes a service down').to.be.above(0);
    for (const f of widened) {
      const down = new Set([...activeAt(overlapping, f.atMs).flatMap((x) => x.down)]);
      expect(['storage', 'query', 'ingestion'].some((svc) => [0, 1].every((i) => down.has(`${svc}-${i}`))), f.name).to.equal(true);
    }
  });

  it('flat faults name flats of the layout, at most three, each held', () => {
    const s = drawSchedule({ ...ALL, kinds: ['http', 'tcp'] }, TWO_NODES);
    const flatFaults = s.faults.filter((f) => f.touches !== 'all' && f.touches.length > 0);
    expect(flatFaults.length).to.be.above(10);
    for (const f of flatFaults) {
      const flats = f.touches as readonly string[];
      expect(flats.length).to.be.within(1, 3);
      for (const flat of flats) expect(TWO_NODES.flats).to.include(flat);
      for (const flat of flats) expect(f.holds).to.include(`flat:${flat}`);
    }
  });

  it('refuses a seed that is no whole number, no kinds, or maxConcurrent 0', () => {
    expect(() => drawSchedule({ ...ALL, seed: 1.5 }, TWO_NODES)).to.throw(/seed/);
    expect(() => drawSchedule({ ...ALL, kinds: [] }, TWO_NODES)).to.throw(/kinds/);
    expect(() => drawSchedule({ ...ALL, maxConcurrent: 0 }, TWO_NODES)).to.throw(/maxConcurrent/);
  });

  it('a stored schedule names what a stack must have to replay it', () => {
    const s = drawSchedule({ ...ALL, kinds: ['node', 'http'] }, TWO_NODES);
    expect(layoutMismatch(s, TWO_NODES)).to.equal(undefined);
    expect(layoutMismatch(s, { ...TWO_NODES, nodes: { 'node-a': TWO_NODES.nodes['node-a']! } })).to.match(/needs node node-b/);
    expect(layoutMismatch(s, { ...TWO_NODES, flats: ['1'] })).to.match(/needs flat/);
  });
});

describe('campaign invariant rules', () => {
  it('excuses the flats a fault touches from its start until the recovery time after its heal; one touching all excuses all', () => {
    const s = { faults: [fault({ id: 1, atMs: 1000, healMs: 5000, touches: ['7', '13'] }), fault({ id: 2, atMs: 20000, healMs: 25000, touches: 'all' })] };
    expect([...(excusedAt(s, 999, 3000) as Set<string>)]).to.deep.equal([]);
    expect([...(excusedAt(s, 1000, 3000) as Set<string>)]).to.deep.equal(['7', '13']);
    expect([...(excusedAt(s, 7999, 3000) as Set<string>)]).to.deep.equal(['7', '13']);
    expect([...(excusedAt(s, 8000, 3000) as Set<string>)]).to.deep.equal([]);
    expect(excusedAt(s, 27999, 3000)).to.equal('all');
    expect([...(excusedAt(s, 28000, 3000) as Set<string>)]).to.deep.equal([]);
  });

  it('excuses a flat\'s fetching only where a fault cuts its polls: a database or storage fault excuses nothing, unless an ingestion replica is down meanwhile', () => {
    const dbFreeze = fault({ id: 1, kind: 'db', action: { type: 'signal', process: 'ferretdb', signal: 'SIGSTOP' }, atMs: 0, healMs: 20000, touches: 'all', cuts: [] });
    const blackhole = fault({ id: 1, kind: 'tcp', action: { type: 'tcp', scenario: 'db-blackhole', options: {} }, atMs: 0, healMs: 20000, touches: 'all', cuts: [] });
    const storageDown = fault({ id: 1, kind: 'grpc', action: { type: 'scenario', scenario: 'storage-unavailable', options: {} }, atMs: 0, healMs: 20000, touches: 'all', cuts: [] });
    const devices = fault({ id: 2, atMs: 5000, healMs: 10000, touches: ['7'], cuts: ['7'] });
    const ingestionStop = fault({ id: 3, kind: 'stop', action: { type: 'signal', process: 'ingestion-1', signal: 'SIGSTOP' }, atMs: 30000, healMs: 40000, down: ['ingestion-1'], touches: [], cuts: [] });
    for (const outage of [dbFreeze, blackhole, storageDown]) {
      expect(excusedAt({ faults: [outage] }, 1000, 3000), `${outage.name}: query's freshness`).to.equal('all');
      expect([...(fetchExcusedAt({ faults: [outage, devices] }, 6000, 3000) as Set<string>)], 'fetching: only the cut flat').to.deep.equal(['7']);
      expect([...(fetchExcusedAt({ faults: [outage, devices] }, 13000, 3000) as Set<string>)], 'recovered').to.deep.equal([]);
    }
    expect([...(fetchExcusedAt({ faults: [ingestionStop] }, 35000, 3000) as Set<string>)], 'another replica takes the leases over').to.deep.equal([]);
    // The lease database out of reach while a replica is down: nobody takes its leases over, and its flats are not known here.
    expect(fetchExcusedAt({ faults: [{ ...dbFreeze, healMs: 31000 }, ingestionStop] }, 32000, 3000)).to.equal('all');
    expect(fetchExcusedAt({ faults: [{ ...blackhole, healMs: 31000 }, ingestionStop] }, 35000, 3000), 'healed over 3 s before').to.not.equal('all');
    expect(fetchExcusedAt({ faults: [{ ...storageDown, healMs: 31000 }, ingestionStop] }, 32000, 3000), 'storage is not the lease database').to.not.equal('all');
    expect(fetchExcusedAt({ faults: [fault({ cuts: 'all', atMs: 0, healMs: 1000 })] }, 3999, 3000)).to.equal('all');
  });

  it('a hole is loss only when two gap counts see it and no ingestion replica was frozen', () => {
    const before = new Map([['7/heat-1/0', 3]]);
    const now = new Map([
      ['7/heat-1/0', 3],
      ['8/heat-1/0', 1],
    ]);
    expect(persistentHoles(undefined, now, false)).to.deep.equal([]);
    expect(persistentHoles(before, now, false)).to.deep.equal(['7/heat-1/0']);
    expect(persistentHoles(before, now, true)).to.deep.equal([]);
  });

  it('knows which processes a fault silences on purpose, and when an ingestion replica is frozen', () => {
    const s = {
      faults: [
        fault({ id: 1, kind: 'stop', action: { type: 'signal', process: 'ingestion-1', signal: 'SIGSTOP' }, atMs: 0, healMs: 10000, down: ['ingestion-1'] }),
        fault({ id: 2, kind: 'node', action: { type: 'node', node: 'node-a', action: 'drain' }, atMs: 20000, healMs: 30000, down: ['ingestion-0', 'query-0', 'storage-0'] }),
      ],
    };
    expect([...silencedAt(s, 5000)]).to.deep.equal(['ingestion-1']);
    expect([...silencedAt(s, 25000)].sort()).to.deep.equal(['ingestion-0', 'query-0', 'storage-0']);
    expect(ingestionFrozenAt(s, 5000)).to.equal(true);
    expect(ingestionFrozenAt(s, 25000), 'drained, not frozen').to.equal(false);
  });
});
