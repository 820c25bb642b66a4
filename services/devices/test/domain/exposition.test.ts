import { expect } from 'chai';
import { escapeLabelValue, expositionOf, latestReadings } from '../../src/domain/exposition.ts';
import { measurementsOf } from '../../src/domain/measurements.ts';
import { deviceCatalogue } from '../../src/domain/meters.ts';
import { continueTimeline, startTimeline } from '../../src/domain/timeline.ts';

describe('exposition of the latest readings', () => {
  const input = { timeline: startTimeline(1000, 0), devices: deviceCatalogue(3), windowMs: 10_000 };

  it('holds, per device, the newest reading of the JSON answer: same seq, time and value', () => {
    for (const now of [10_000, 12_345, 99_999]) {
      const doc = measurementsOf('17', input, now);
      const latest = latestReadings('17', input, now);
      expect(latest.map((r) => r.device.id)).to.deep.equal(doc.devices.map((d) => d.device_id));
      latest.forEach((r, i) => {
        const last = doc.devices[i]!.readings.at(-1)!;
        expect([r.seq, new Date(r.takenAtMs).toISOString(), r.value]).to.deep.equal([last.seq, last.taken_at, last.value]);
      });
    }
  });

  it('follows the timeline across a change of period', () => {
    const timeline = continueTimeline(startTimeline(1000, 0), 250, 20_000);
    const withTwo = { ...input, timeline };
    const doc = measurementsOf('3', withTwo, 21_000);
    expect(latestReadings('3', withTwo, 21_000).map((r) => r.seq)).to.deep.equal(doc.devices.map((d) => d.readings.at(-1)!.seq));
  });

  it('leaves out a device that has not read yet', () => {
    expect(latestReadings('17', { ...input, timeline: startTimeline(1000, 50_000) }, 50_000)).to.deep.equal([]);
  });

  it('writes one timestamped gauge sample per device for the reading and for its seq', () => {
    const text = expositionOf('17', latestReadings('17', input, 10_000));
    const samples = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    expect(samples).to.have.length(6);
    expect(samples[0]).to.match(/^flatline_device_reading\{flat="17",device="heat-1",quantity="temperature",unit="Cel"\} -?\d+(\.\d+)? \d+$/);
    expect(samples[5]).to.match(/^flatline_device_reading_seq\{flat="17",device="water-1"\} \d+ \d+$/);
    expect(text).to.include('# TYPE flatline_device_reading gauge\n').and.include('# TYPE flatline_device_reading_seq gauge\n');
    expect(text.endsWith('\n')).to.equal(true);
  });

  it('escapes backslash, double quote and line feed in label values', () => {
    expect(escapeLabelValue('a\\b"c\nd')).to.equal('a\\\\b\\"c\\nd');
  });
});
