import { expect } from 'chai';
import { deviceCatalogue, identityHash, meterValue } from '../../src/domain/meters.ts';
import { isoFormatter, measurementsOf, withWrongTypes } from '../../src/domain/measurements.ts';
import { startTimeline } from '../../src/domain/timeline.ts';

describe('meters', () => {
  it('cycles heat, power and water through a flat\'s devices', () => {
    expect(deviceCatalogue(7).map((d) => `${d.id} ${d.quantity} ${d.unit}`)).to.deep.equal([
      'heat-1 temperature Cel',
      'power-1 electricity kWh',
      'water-1 water m3',
      'heat-2 temperature Cel',
      'power-2 electricity kWh',
      'water-2 water m3',
      'heat-3 temperature Cel',
    ]);
  });

  it('gives each device its own seed', () => {
    const seeds = new Set<number>();
    for (let f = 1; f <= 1000; f++) for (const d of deviceCatalogue(3)) seeds.add(identityHash(String(f), d.id));
    expect(seeds.size).to.equal(3000);
  });

  it('reads plausible temperatures, and counters that never run backwards', () => {
    const epoch = Date.UTC(2026, 0, 1);
    const problems: string[] = [];
    for (let f = 1; f <= 50; f++) {
      const seed = identityHash(String(f), 'x');
      let power = -Infinity;
      let water = -Infinity;
      // Three days at one reading a minute.
      for (let seq = 1; seq <= 3 * 24 * 60; seq++) {
        const t = epoch + seq * 60_000;
        const temp = meterValue('heat', seed, seq, t, epoch);
        const p = meterValue('power', seed, seq, t, epoch);
        const w = meterValue('water', seed, seq, t, epoch);
        if (!(temp >= 16 && temp <= 26)) problems.push(`flat ${f} seq ${seq}: ${temp} °C`);
        if (p < power) problems.push(`flat ${f} seq ${seq}: power ${p} after ${power}`);
        if (w < water) problems.push(`flat ${f} seq ${seq}: water ${w} after ${water}`);
        power = p;
        water = w;
      }
    }
    expect(problems.slice(0, 5)).to.deep.equal([]);
  });

  it('rounds values: 2 decimals for °C, 4 for kWh, 5 for m³', () => {
    const seed = identityHash('17', 'heat-1');
    const decimals = (v: number) => (String(v).split('.')[1] ?? '').length;
    expect(decimals(meterValue('heat', seed, 5, 1e12, 0))).to.be.at.most(2);
    expect(decimals(meterValue('power', seed, 5, 1e12, 0))).to.be.at.most(4);
    expect(decimals(meterValue('water', seed, 5, 1e12, 0))).to.be.at.most(5);
  });

  it('answers the same values for the same readings, whenever asked', () => {
    const input = { timeline: startTimeline(1000, 0), devices: deviceCatalogue(3), windowMs: 10_000 };
    const a = measurementsOf('17', input, 100_000);
    const b = measurementsOf('17', input, 105_000);
    for (let i = 0; i < 3; i++) {
      const bySeq = new Map(b.devices[i]!.readings.map((r) => [r.seq, r]));
      const shared = a.devices[i]!.readings.filter((r) => bySeq.has(r.seq));
      expect(shared.length).to.equal(5);
      for (const r of shared) expect(bySeq.get(r.seq)).to.deep.equal(r);
    }
  });

  it('formats times exactly as Date#toISOString', () => {
    const iso = isoFormatter();
    const problems: string[] = [];
    let t = Date.UTC(2026, 11, 31, 23, 58, 0, 0);
    for (let i = 0; i < 20_000; i++) {
      t += Math.floor(Math.random() * 997);
      if (iso(t) !== new Date(t).toISOString()) problems.push(`${t}: ${iso(t)}`);
    }
    for (const ms of [0, 999, 1000, 59_999, 60_000, Date.UTC(2028, 1, 29, 23, 59, 59, 999)]) {
      if (iso(ms) !== new Date(ms).toISOString()) problems.push(`${ms}: ${iso(ms)}`);
    }
    expect(problems.slice(0, 5)).to.deep.equal([]);
  });

  it('wrong-types turns seq and value into strings, and nothing else', () => {
    const doc = measurementsOf('17', { timeline: startTimeline(1000, 0), devices: deviceCatalogue(1), windowMs: 3000 }, 10_000);
    const wrong = withWrongTypes(doc) as typeof doc;
    const r = wrong.devices[0]!.readings[0]! as unknown as Record<string, unknown>;
    expect(typeof r['seq']).to.equal('string');
    expect(typeof r['value']).to.equal('string');
    expect(r['taken_at']).to.equal(doc.devices[0]!.readings[0]!.taken_at);
  });
});
