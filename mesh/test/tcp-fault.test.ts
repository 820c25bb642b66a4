import { expect } from 'chai';
import { InvalidFaultError } from '../src/fault.ts';
import { SCENARIOS } from '../src/scenarios.ts';
import { DB_LINKS, declareTcpFault, LINKS, TCP_SCENARIOS, TCP_TOXIC_TYPES, tcpScenario, tcpToxicsFor, toxicName } from '../src/tcp-fault.ts';

const latency = { type: 'latency', attributes: { latency: 1000 } };
const base = { name: 'f', link: 'storage-db', toxics: [latency] };

describe('TCP fault declarations', () => {
  it('fills in the defaults: downstream, toxicity 1, jitter 0, slicer variation and delay 0', () => {
    const f = declareTcpFault({ ...base, toxics: [latency, { type: 'slicer', attributes: { average_size: 16 } }] });
    expect(f.toxics).to.deep.equal([
      { type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 1000, jitter: 0 } },
      { type: 'slicer', stream: 'downstream', toxicity: 1, attributes: { average_size: 16, size_variation: 0, delay: 0 } },
    ]);
    expect(f.flats).to.equal(undefined);
  });

  it('takes every toxic Toxiproxy has, under its own attribute names', () => {
    const all = {
      latency: { latency: 0, jitter: 5 },
      bandwidth: { rate: 1 },
      slow_close: { delay: 100 },
      timeout: { timeout: 0 },
      reset_peer: { timeout: 10 },
      slicer: { average_size: 2, size_variation: 1, delay: 10 },
      limit_data: { bytes: 1 },
    };
    const f = declareTcpFault({ ...base, toxics: TCP_TOXIC_TYPES.map((type) => ({ type, stream: 'upstream', toxicity: 0.5, attributes: all[type] })) });
    expect(f.toxics.map((t) => [t.type, t.attributes])).to.deep.equal(TCP_TOXIC_TYPES.map((type) => [type, all[type]]));
    // The same type on both streams is two toxics, not a duplicate.
    expect(declareTcpFault({ ...base, toxics: [latency, { ...latency, stream: 'upstream' }] }).toxics).to.have.length(2);
  });

  it('takes flats on the device link, each with its own toxics, and then needs no link-wide toxics', () => {
    const f = declareTcpFault({ name: 'f', link: 'ingestion-devices', flats: { '7': [latency], 'flat_13-b': [{ type: 'reset_peer', attributes: { timeout: 0 } }] } });
    expect(f.toxics).to.deep.equal([]);
    expect(Object.keys(f.flats!)).to.deep.equal(['7', 'flat_13-b']);
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['a toxicity given as a percentage', { ...base, toxics: [{ ...latency, toxicity: 50 }] }, /^toxics\.0\.toxicity: must be a fraction from 0 to 1, not a percentage \(for 50 % write 0\.5\)/],
    ['a negative toxicity', { ...base, toxics: [{ ...latency, toxicity: -0.1 }] }, /^toxics\.0\.toxicity: must be a fraction/],
    ['a negative latency', { ...base, toxics: [{ type: 'latency', attributes: { latency: -1 } }] }, /^toxics\.0\.attributes\.latency: must be ≥ 0$/],
    ['a fractional latency', { ...base, toxics: [{ type: 'latency', attributes: { latency: 1.5 } }] }, /^toxics\.0\.attributes\.latency: must be a whole number of ms/],
    ['a fractional jitter', { ...base, toxics: [{ type: 'latency', attributes: { latency: 1, jitter: 0.5 } }] }, /^toxics\.0\.attributes\.jitter: must be a whole number of ms/],
    ['a missing attribute', { ...base, toxics: [{ type: 'latency', attributes: {} }] }, /^toxics\.0\.attributes\.latency: is required \(ms\)/],
    ['a zero bandwidth', { ...base, toxics: [{ type: 'bandwidth', attributes: { rate: 0 } }] }, /^toxics\.0\.attributes\.rate: must be > 0/],
    ['a negative reset_peer timeout', { ...base, toxics: [{ type: 'reset_peer', attributes: { timeout: -5 } }] }, /^toxics\.0\.attributes\.timeout: must be ≥ 0/],
    ['a zero limit_data', { ...base, toxics: [{ type: 'limit_data', attributes: { bytes: 0 } }] }, /^toxics\.0\.attributes\.bytes: must be > 0/],
    ['a fractional slicer delay', { ...base, toxics: [{ type: 'slicer', attributes: { average_size: 4, delay: 2.5 } }] }, /^toxics\.0\.attributes\.delay: must be a whole number of µs/],
    ['an unknown toxic type', { ...base, toxics: [{ type: 'packet_loss', attributes: {} }] }, /^toxics\.0\.type: must be one of Toxiproxy's toxics \(latency, bandwidth/],
    ['an unknown attribute', { ...base, toxics: [{ type: 'latency', attributes: { latency: 1, latencyMs: 1 } }] }, /^toxics\.0\.attributes: latency has no attribute latencyMs \(it takes latency, jitter\)/],
    ['an attribute of another type', { ...base, toxics: [{ type: 'timeout', attributes: { timeout: 0, latency: 1 } }] }, /^toxics\.0\.attributes: timeout has no attribute latency/],
    ['an unknown toxic field', { ...base, toxics: [{ ...latency, name: 'mine' }] }, /^toxics\.0: Unrecognized key/],
    ['an unknown stream', { ...base, toxics: [{ ...latency, stream: 'both' }] }, /^toxics\.0\.stream: must be upstream \(client → server\) or downstream/],
    ['size_variation equal to average_size', { ...base, toxics: [{ type: 'slicer', attributes: { average_size: 4, size_variation: 4 } }] }, /^toxics\.0\.attributes\.size_variation: must be less than average_size/],
    ['size_variation above average_size', { ...base, toxics: [{ type: 'slicer', attributes: { average_size: 4, size_variation: 9 } }] }, /^toxics\.0\.attributes\.size_variation: must be less than average_size/],
    ['the same type and stream twice', { ...base, toxics: [latency, { type: 'latency', stream: 'downstream', attributes: { latency: 5 } }] }, /^toxics\.1: repeats the latency downstream toxic of item 0/],
    ['more than seven toxics', { ...base, toxics: Array(8).fill(latency) }, /^toxics: must have at most 7 toxics/],
    ['empty toxics without flats', { ...base, toxics: [] }, /^toxics: must have 1 to 7 toxics \(or, on ingestion-devices, flats/],
    ['no toxics and no flats', { name: 'f', link: 'ingestion-devices' }, /^toxics: must have 1 to 7 toxics/],
    ['flats on a database link', { ...base, flats: { '7': [latency] } }, /^flats: are only for the ingestion-devices link/],
    ['flats on the storage link', { name: 'f', link: 'ingestion-storage', flats: { '7': [latency] } }, /^flats: are only for the ingestion-devices link/],
    ['a bad flat id', { name: 'f', link: 'ingestion-devices', flats: { 'flat 7': [latency] } }, /^flats\.flat 7: must be a flat id: 1 to 64 characters of \[A-Za-z0-9_-\]/],
    ['a flat id over 64 characters', { name: 'f', link: 'ingestion-devices', flats: { ['x'.repeat(65)]: [latency] } }, /^flats\.x{65}: must be a flat id/],
    ['a flat without toxics', { name: 'f', link: 'ingestion-devices', flats: { '7': [] } }, /^flats\.7: must have 1 to 7 toxics/],
    ['no flats at all', { name: 'f', link: 'ingestion-devices', flats: {} }, /^flats: must name at least one flat/],
    ['a bad toxic of one flat', { name: 'f', link: 'ingestion-devices', flats: { '7': [latency], '13': [{ ...latency, toxicity: 50 }] } }, /^flats\.13\.0\.toxicity: must be a fraction/],
    ['a duplicate within one flat', { name: 'f', link: 'ingestion-devices', flats: { '7': [latency, latency] } }, /^flats\.7\.1: repeats the latency downstream toxic/],
    ['an unknown link', { ...base, link: 'mongodb' }, /^link: must be one of the links \(storage-db, query-db/],
    ['a bad name', { ...base, name: 'Not A Label' }, /^name: must be a DNS label/],
    ['an unknown top-level field', { ...base, host: 'storage' }, /^fault: Unrecognized key/],
  ];
  for (const [what, input, message] of bad) {
    it(`refuses ${what}, naming the field`, () => {
      expect(() => declareTcpFault(input)).to.throw(InvalidFaultError, message);
    });
  }

  it('gives each connection its own toxics: a flat named in flats gets its own, any other the link’s', () => {
    const f = declareTcpFault({
      name: 'f',
      link: 'ingestion-devices',
      toxics: [{ type: 'latency', attributes: { latency: 1000 } }],
      flats: { '7': [{ type: 'latency', attributes: { latency: 30000 } }], '13': [{ type: 'reset_peer', attributes: { timeout: 0 } }] },
    });
    expect(tcpToxicsFor(f, '7').map((t) => t.attributes)).to.deep.equal([{ latency: 30000, jitter: 0 }]);
    expect(tcpToxicsFor(f, '13').map((t) => t.type)).to.deep.equal(['reset_peer']);
    expect(tcpToxicsFor(f, '21').map((t) => t.attributes)).to.deep.equal([{ latency: 1000, jitter: 0 }]);
    expect(tcpToxicsFor(f).map((t) => t.attributes)).to.deep.equal([{ latency: 1000, jitter: 0 }]);
    // An inherited property name is not a flat.
    expect(tcpToxicsFor(f, 'constructor')).to.equal(f.toxics);
  });

  it('names a toxic `<fault>-<type>-<stream>`, the same every time', () => {
    const f = declareTcpFault({ ...base, name: 'db-slow-storage-db', toxics: [latency, { ...latency, stream: 'upstream' }] });
    expect(f.toxics.map((t) => toxicName(f, t))).to.deep.equal(['db-slow-storage-db-latency-downstream', 'db-slow-storage-db-latency-upstream']);
    expect(toxicName(declareTcpFault({ ...base, name: 'db-slow-storage-db' }), { type: 'latency', stream: 'downstream' })).to.equal('db-slow-storage-db-latency-downstream');
  });
});

describe('TCP scenarios', () => {
  it('have names of their own, unique across the HTTP/gRPC and TCP scenarios', () => {
    const names = [...SCENARIOS, ...TCP_SCENARIOS].map((s) => s.name);
    expect(new Set(names).size).to.equal(names.length);
  });

  it('each builds valid declarations, every toxic at toxicity 1 by default', () => {
    for (const s of TCP_SCENARIOS) {
      for (const options of [{}, { flats: ['7'] }]) {
        const faults = s.build(options);
        expect(faults, s.name).to.have.length.above(0);
        for (const f of faults) {
          expect(declareTcpFault(f), s.name).to.deep.equal(f);
          const toxics = [...f.toxics, ...Object.values(f.flats ?? {}).flat()];
          expect(toxics, s.name).to.have.length.above(0);
          for (const t of toxics) expect(t.toxicity, s.name).to.equal(1);
        }
        const declared = faults.map((f) => f.name);
        expect(new Set(declared).size, s.name).to.equal(declared.length);
      }
    }
  });

  it('turn percent (0–100) into Toxiproxy’s toxicity fraction, and refuse a percent outside 0–100', () => {
    for (const s of TCP_SCENARIOS) {
      for (const f of s.build({ percent: 25, flats: ['7'] })) {
        for (const t of [...f.toxics, ...Object.values(f.flats ?? {}).flat()]) expect(t.toxicity, s.name).to.equal(0.25);
      }
      expect(() => s.build({ percent: 150 }), s.name).to.throw(InvalidFaultError, /^percent: must be from 0 to 100, got 150/);
    }
  });

  it('db-reset, db-slow, db-blackhole: one declaration per database link, each with its toxic', () => {
    const reset = tcpScenario('db-reset')!.build({});
    expect(reset.map((f) => [f.name, f.link])).to.deep.equal(DB_LINKS.map((l) => [`db-reset-${l}`, l]));
    for (const f of reset) expect(f.toxics).to.deep.equal([{ type: 'reset_peer', stream: 'downstream', toxicity: 1, attributes: { timeout: 0 } }]);

    const slow = tcpScenario('db-slow')!.build({ delayMs: 250, jitterMs: 50 });
    expect(slow.map((f) => f.link)).to.deep.equal([...DB_LINKS]);
    for (const f of slow) expect(f.toxics).to.deep.equal([{ type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 250, jitter: 50 } }]);
    expect(tcpScenario('db-slow')!.build({})[0]!.toxics[0]!.attributes).to.deep.equal({ latency: 1000, jitter: 0 });

    const blackhole = tcpScenario('db-blackhole')!.build({});
    expect(blackhole.map((f) => f.link)).to.deep.equal([...DB_LINKS]);
    for (const f of blackhole) expect(f.toxics).to.deep.equal([{ type: 'timeout', stream: 'downstream', toxicity: 1, attributes: { timeout: 0 } }]);
  });

  it('devices-tcp-slow: flat 7 30 s, flat 13 5 s, flat 21 12 s, each on its own connections', () => {
    const [f, ...rest] = tcpScenario('devices-tcp-slow')!.build({ perFlat: { '7': 30000, '13': 5000, '21': 12000 } });
    expect(rest).to.deep.equal([]);
    expect(f!.link).to.equal('ingestion-devices');
    expect(f!.toxics).to.deep.equal([]);
    const latencyOf = (flat: string) => tcpToxicsFor(f!, flat).map((t) => (t.type === 'latency' ? t.attributes.latency : NaN));
    expect(latencyOf('7')).to.deep.equal([30000]);
    expect(latencyOf('13')).to.deep.equal([5000]);
    expect(latencyOf('21')).to.deep.equal([12000]);
    expect(latencyOf('8')).to.deep.equal([]);
  });

  it('devices-tcp-slow: chosen flats take delayMs, perFlat overrides it, no flats means every connection', () => {
    const f = tcpScenario('devices-tcp-slow')!.build({ flats: ['7', '13'], delayMs: 2000, perFlat: { '13': 5000 } })[0]!;
    expect(Object.keys(f.flats!)).to.deep.equal(['7', '13']);
    expect(tcpToxicsFor(f, '7')[0]!.attributes).to.deep.equal({ latency: 2000, jitter: 0 });
    expect(tcpToxicsFor(f, '13')[0]!.attributes).to.deep.equal({ latency: 5000, jitter: 0 });

    const every = tcpScenario('devices-tcp-slow')!.build({})[0]!;
    expect(every.flats).to.equal(undefined);
    expect(tcpToxicsFor(every, '99')[0]!.attributes).to.deep.equal({ latency: 30000, jitter: 0 });
    expect(() => tcpScenario('devices-tcp-slow')!.build({ flats: ['flat 7'] })).to.throw(InvalidFaultError, /^flats\.flat 7: must be a flat id/);
    expect(() => tcpScenario('devices-tcp-slow')!.build({ delayMs: 1.5 })).to.throw(InvalidFaultError, /^toxics\.0\.attributes\.latency: must be a whole number of ms/);
  });

  it('devices-dribble: slicer on the chosen flats, its pause converted from ms to Toxiproxy’s µs', () => {
    const f = tcpScenario('devices-dribble')!.build({ flats: ['7'], perFlat: { '13': 50 } })[0]!;
    expect(f.link).to.equal('ingestion-devices');
    expect(tcpToxicsFor(f, '7')).to.deep.equal([{ type: 'slicer', stream: 'downstream', toxicity: 1, attributes: { average_size: 8, size_variation: 4, delay: 20000 } }]);
    expect(tcpToxicsFor(f, '13')[0]!.attributes).to.deep.equal({ average_size: 8, size_variation: 4, delay: 50000 });
    expect(tcpScenario('devices-dribble')!.build({ flats: ['7'], chunkBytes: 1 })[0]!.flats!['7']![0]!.attributes).to.deep.equal({ average_size: 1, size_variation: 0, delay: 20000 });
  });

  it('devices-cut: limit_data on the chosen flats only', () => {
    const f = tcpScenario('devices-cut')!.build({ flats: ['7'], limitBytes: 512, perFlat: { '13': 1 } })[0]!;
    expect(Object.keys(f.flats!)).to.deep.equal(['7']);
    expect(tcpToxicsFor(f, '7')).to.deep.equal([{ type: 'limit_data', stream: 'downstream', toxicity: 1, attributes: { bytes: 512 } }]);
    expect(tcpToxicsFor(f, '13')).to.deep.equal([]);
  });

  it('storage-link-reset: reset_peer on ingestion → storage', () => {
    expect(tcpScenario('storage-link-reset')!.build({})).to.deep.equal([
      { name: 'storage-link-reset', link: 'ingestion-storage', toxics: [{ type: 'reset_peer', stream: 'downstream', toxicity: 1, attributes: { timeout: 0 } }] },
    ]);
    expect(tcpScenario('nope')).to.equal(undefined);
    expect(LINKS).to.include('ingestion-storage');
  });
});
