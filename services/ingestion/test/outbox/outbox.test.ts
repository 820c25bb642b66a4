import { expect } from 'chai';
import { join } from 'node:path';
import { Outbox } from '../../src/outbox/outbox.ts';
import type { DeviceReading } from '../../src/domain/device-answer.ts';
import { tempDir } from '../../../../test/support/stack.ts';

const r = (deviceId: string, seq: number): DeviceReading => ({ deviceId, seq, takenAtMs: 1_700_000_000_000 + seq * 1000, quantity: 'temperature', unit: 'Cel', value: seq });

describe('outbox (better-sqlite3, WAL)', () => {
  const dir = tempDir('outbox');
  after(() => dir.cleanup());

  it('keeps only readings newer than each device cursor, and counts readings a device no longer had', () => {
    const box = new Outbox(join(dir.path, 'a', 'outbox.sqlite'));
    const [first] = box.record([{ flatId: '1', fetchedAtMs: 1, readings: [r('heat', 1), r('heat', 2), r('power', 7)] }]);
    expect(first).to.deep.equal({ fresh: 3, missed: 0 });
    // Overlapping window: heat 2 is known; heat 3 is new; power jumped from 7 to 10 (8 and 9 are gone).
    const [second] = box.record([{ flatId: '1', fetchedAtMs: 2, readings: [r('heat', 2), r('heat', 3), r('power', 10)] }]);
    expect(second).to.deep.equal({ fresh: 2, missed: 2 });
    // A fetch with nothing new is still recorded: it is a successful fetch.
    const [third] = box.record([{ flatId: '1', fetchedAtMs: 3, readings: [r('heat', 3)] }]);
    expect(third).to.deep.equal({ fresh: 0, missed: 0 });
    expect(box.size()).to.deep.equal({ fetches: 3, readings: 5 });
    box.close();
  });

  it('survives a reopen (a crash) with its rows and cursors, and deletes only what was acknowledged', () => {
    const file = join(dir.path, 'b', 'outbox.sqlite');
    const box = new Outbox(file);
    box.record([
      { flatId: '1', fetchedAtMs: 1, readings: [r('heat', 1)] },
      { flatId: '2', fetchedAtMs: 1, readings: [r('heat', 1), r('heat', 2)] },
    ]);
    box.close();
    const again = new Outbox(file);
    const batch = again.peek(1, 10000);
    expect(batch.map((f) => [f.flatId, f.readings.map((x) => x.seq)])).to.deep.equal([['2', [1, 2]]]);
    again.ack(batch);
    expect(again.size()).to.deep.equal({ fetches: 1, readings: 1 });
    // The cursor survived: the same readings are not taken twice.
    expect(again.record([{ flatId: '2', fetchedAtMs: 2, readings: [r('heat', 2)] }])[0]).to.deep.equal({ fresh: 0, missed: 0 });
    again.close();
  });

  it('peek respects the readings limit but always returns at least one fetch', () => {
    const box = new Outbox(join(dir.path, 'c', 'outbox.sqlite'));
    box.record([
      { flatId: '1', fetchedAtMs: 1, readings: [r('a', 1), r('a', 2), r('a', 3)] },
      { flatId: '2', fetchedAtMs: 1, readings: [r('a', 1)] },
    ]);
    expect(box.peek(10, 2).map((f) => f.flatId)).to.deep.equal(['2']);
    expect(box.peek(10, 4).map((f) => f.flatId)).to.deep.equal(['2', '1']);
    box.close();
  });

  it('hands out the newest fetches first, and an ack deletes exactly its batch, even with fetches recorded meanwhile', () => {
    const box = new Outbox(join(dir.path, 'd', 'outbox.sqlite'));
    box.record([1, 2, 3, 4].map((n) => ({ flatId: String(n), fetchedAtMs: n, readings: [r('a', n)] })));
    const batch = box.peek(2, 100);
    expect(batch.map((f) => f.flatId)).to.deep.equal(['4', '3']);
    box.record([{ flatId: '5', fetchedAtMs: 5, readings: [r('a', 5)] }]); // arrives while the batch is in flight
    box.ack(batch);
    expect(box.peek(10, 100).map((f) => f.flatId)).to.deep.equal(['5', '2', '1']);
    box.close();
  });
});
