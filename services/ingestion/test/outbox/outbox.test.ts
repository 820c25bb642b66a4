import { expect } from 'chai';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { AppendRequest as StorageAppendRequest } from '@flatline/proto';
import { lastFetches } from '../../src/outbox/held.ts';
import { FRESH_MS, MAX_ROW_READINGS, Outbox, OutboxFullError } from '../../src/outbox/outbox.ts';
import { toAppendRequest } from '../../src/storage/forwarder.ts';
import type { DeviceReading } from '../../src/domain/device-answer.ts';
import { tempDir } from '@flatline/stack';

const r = (deviceId: string, seq: number): DeviceReading => ({ deviceId, seq, takenAtMs: 1_700_000_000_000 + seq * 1000, quantity: 'temperature', unit: 'Cel', value: seq });

describe('outbox (better-sqlite3, WAL)', () => {
  const dir = tempDir('outbox');
  after(() => dir.cleanup());

  it('keeps only readings newer than each device cursor, and counts readings a device no longer had', () => {
    const box = new Outbox(join(dir.path, 'a', 'outbox.sqlite'));
    const [first] = box.record([{ flatId: '1', fetchedAtMs: 1, readings: [r('heat', 1), r('heat', 2), r('power', 7)] }]);
    expect(first).to.deep.equal({ fresh: 3, missed: 0, holes: [], resets: 0 });
    // Overlapping window: heat 2 is known; heat 3 is new; power jumped from 7 to 10 (8 and 9 are gone).
    const [second] = box.record([{ flatId: '1', fetchedAtMs: 2, readings: [r('heat', 2), r('heat', 3), r('power', 10)] }]);
    expect(second).to.deep.equal({
      fresh: 2,
      missed: 2,
      holes: [{ deviceId: 'power', epoch: 0, fromSeq: 8, toSeq: 9, afterTakenAtMs: 1_700_000_007_000, beforeTakenAtMs: 1_700_000_010_000 }],
      resets: 0,
    });
    // A fetch with nothing new is still recorded: it is a successful fetch.
    const [third] = box.record([{ flatId: '1', fetchedAtMs: 3, readings: [r('heat', 3)] }]);
    expect(third).to.deep.equal({ fresh: 0, missed: 0, holes: [], resets: 0 });
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
    expect(batch.map((f) => [f.flatId, f.readings.map((x) => x.seq)])).to.deep.equal([['1', [1]]]);
    again.ack(batch);
    expect(again.size()).to.deep.equal({ fetches: 1, readings: 2 });
    // The cursor survived: the same readings are not taken twice.
    expect(again.record([{ flatId: '2', fetchedAtMs: 2, readings: [r('heat', 2)] }])[0]).to.deep.equal({ fresh: 0, missed: 0, holes: [], resets: 0 });
    again.close();
  });

  it('peek respects the readings limit but always returns at least one fetch', () => {
    const box = new Outbox(join(dir.path, 'c', 'outbox.sqlite'));
    box.record([
      { flatId: '1', fetchedAtMs: 1, readings: [r('a', 1), r('a', 2), r('a', 3)] },
      { flatId: '2', fetchedAtMs: 1, readings: [r('a', 1)] },
    ]);
    expect(box.peek(10, 2).map((f) => f.flatId)).to.deep.equal(['1']);
    expect(box.peek(10, 4).map((f) => f.flatId)).to.deep.equal(['1', '2']);
    box.close();
  });

  it('hands out the fresh fetches first, newest first, then the oldest (none starves), and an ack deletes exactly its batch, not the rows between, even with fetches recorded meanwhile', () => {
    const box = new Outbox(join(dir.path, 'd', 'outbox.sqlite'));
    // Fetched at 1..8 s; peeked at 8 s: 7 and 8 are fresh (fetched less than FRESH_MS, 2 s, before).
    box.record([1, 2, 3, 4, 5, 6, 7, 8].map((n) => ({ flatId: String(n), fetchedAtMs: n * 1000, readings: [r('a', n)] })));
    const now = 8000;
    expect(FRESH_MS).to.equal(2000);
    const batch = box.peek(4, 100, now);
    expect(batch.map((f) => f.flatId), 'the fresh newest first, then the oldest').to.deep.equal(['8', '7', '1', '2']);
    box.record([{ flatId: '9', fetchedAtMs: 9000, readings: [r('a', 9)] }]); // arrives while the batch is in flight
    box.ack(batch);
    expect(box.size()).to.deep.equal({ fetches: 5, readings: 5 });
    expect(box.peek(10, 100, now).map((f) => f.flatId)).to.deep.equal(['9', '3', '4', '5', '6']);
    expect(box.peek(2, 100, now).map((f) => f.flatId)).to.deep.equal(['9', '3']);
    // Nothing fresh: oldest first (an outage's backlog drains in order once the devices are cut).
    expect(box.peek(2, 100, 60_000).map((f) => f.flatId)).to.deep.equal(['3', '4']);
    // All fresh: newest first.
    expect(box.peek(2, 100, 3000).map((f) => f.flatId)).to.deep.equal(['9', '6']);
    box.close();
  });

  it('gives the oldest the room the fresh leave, in fetches and in readings, and takes none from the fresh', () => {
    const box = new Outbox(join(dir.path, 'e', 'outbox.sqlite'));
    const big = (n: number) => ({ flatId: `big${n}`, fetchedAtMs: n, readings: Array.from({ length: 10 }, (_, i) => r('a', 10 * n + i)) });
    box.record([1, 2, 3, 4].map(big));
    box.record(Array.from({ length: 8 }, (_, i) => ({ flatId: `new${i}`, fetchedAtMs: 100_000, readings: [r('b', i + 1)] })));
    const fresh = ['new7', 'new6', 'new5', 'new4', 'new3', 'new2', 'new1', 'new0'];
    // 8 fresh (8 readings), then the oldest up to 30 readings: big1 and big2, not big3.
    expect(box.peek(12, 30, 100_000).map((f) => f.flatId)).to.deep.equal([...fresh, 'big1', 'big2']);
    // The fresh fill the batch: nothing old.
    expect(box.peek(8, 100, 100_000).map((f) => f.flatId)).to.deep.equal(fresh);
    expect(box.peek(12, 8, 100_000).map((f) => f.flatId)).to.deep.equal(fresh);
    box.close();
  });
});

describe('outbox bounds', () => {
  const dir = tempDir('outbox-bounds');
  after(() => dir.cleanup());

  const many = (n: number, device = 'heat'): DeviceReading[] => Array.from({ length: n }, (_, i) => r(device, i + 1));

  it('keeps a fetch of more readings than one Append may carry as rows of at most MAX_ROW_READINGS, and every peek fits an Append', () => {
    const box = new Outbox(join(dir.path, 'split', 'outbox.sqlite'));
    const [rec] = box.record([{ flatId: 'big', fetchedAtMs: 1, readings: many(25_000) }]);
    expect(rec).to.deep.equal({ fresh: 25_000, missed: 0, holes: [], resets: 0 });
    expect(box.size()).to.deep.equal({ fetches: Math.ceil(25_000 / MAX_ROW_READINGS), readings: 25_000 });
    const seen = new Set<number>();
    for (;;) {
      const batch = box.peek(1000, 10_000);
      if (batch.length === 0) break;
      const readings = batch.reduce((n, f) => n + f.readings.length, 0);
      expect(readings).to.be.at.most(10_000);
      for (const f of batch) for (const x of f.readings) seen.add(x.seq);
      box.ack(batch);
    }
    expect(seen.size).to.equal(25_000);
    box.close();
  });

  it('splits the oversized rows an older version kept when it opens', () => {
    const file = join(dir.path, 'legacy', 'outbox.sqlite');
    new Outbox(file).close();
    const raw = new Database(file);
    const rows = many(2_500).map((x) => [x.deviceId, x.seq, x.takenAtMs, x.quantity, x.unit, x.value]);
    raw.prepare('INSERT INTO outbox (flat_id, fetched_at_ms, readings, reading_count) VALUES (?, ?, ?, ?)').run('old', 1, JSON.stringify(rows), rows.length);
    raw.close();
    const box = new Outbox(file);
    expect(box.size()).to.deep.equal({ fetches: 3, readings: 2_500 });
    expect(box.peek(1, 10_000)[0]!.readings.length).to.be.at.most(MAX_ROW_READINGS);
    box.close();
  });

  it('keeps every peek under the gRPC message limit, whatever the ids weigh', () => {
    const box = new Outbox(join(dir.path, 'bytes', 'outbox.sqlite'));
    const long = 'd'.repeat(64);
    const flat = 'f'.repeat(64);
    const heavy = (seq: number): DeviceReading => ({ deviceId: long, seq, takenAtMs: 1, quantity: 'q'.repeat(64), unit: 'u'.repeat(32), value: seq });
    box.record([{ flatId: flat, fetchedAtMs: 1, readings: Array.from({ length: 20_000 }, (_, i) => heavy(i + 1)) }]);
    const batch = box.peek(1000, 10_000);
    const bytes = StorageAppendRequest.encode(toAppendRequest(batch)).finish().length;
    expect(bytes).to.be.below(4 * 1024 * 1024);
    box.close();
  });

  it('refuses to record once it holds maxBytes (keeping nothing, moving no cursor), and records again when drained', () => {
    const box = new Outbox(join(dir.path, 'full', 'outbox.sqlite'), { maxBytes: 256 * 1024 });
    let full: unknown;
    let seq = 0;
    for (let i = 0; i < 1000 && full === undefined; i++) {
      try {
        box.record([{ flatId: 'f', fetchedAtMs: i, readings: Array.from({ length: 50 }, () => r('heat', ++seq)) }]);
      } catch (err) {
        full = err;
        seq -= 50;
      }
    }
    expect(full).to.be.instanceOf(OutboxFullError);
    expect((full as Error).message).to.match(/FLATLINE_OUTBOX_MAX_BYTES/);
    expect(box.usedBytes()).to.be.at.least(256 * 1024);
    // The refused readings were not taken: the cursor still expects them.
    for (;;) {
      const batch = box.peek(1000, 10_000);
      if (batch.length === 0) break;
      box.ack(batch);
    }
    expect(box.record([{ flatId: 'f', fetchedAtMs: 9999, readings: [r('heat', seq + 1)] }])[0]).to.deep.equal({ fresh: 1, missed: 0, holes: [], resets: 0 });
    box.close();
  });

  it('records when each flat was last fetched and kept, read by another process: forwarded or not, never by a fetch it refused', () => {
    const file = join(dir.path, 'last-fetch', 'outbox.sqlite');
    expect(lastFetches(file).size, 'no file yet').to.equal(0);
    const box = new Outbox(file, { maxBytes: 256 * 1024 });
    box.record([
      { flatId: '1', fetchedAtMs: 1000, readings: [r('heat', 1)] },
      { flatId: '2', fetchedAtMs: 1500, readings: [r('heat', 1)] },
    ]);
    // A fetch with nothing new is a fetch; one recorded late (an older fetchedAtMs) does not move it back.
    box.record([{ flatId: '1', fetchedAtMs: 3000, readings: [r('heat', 1)] }]);
    box.record([{ flatId: '1', fetchedAtMs: 2000, readings: [r('heat', 1)] }]);
    // Forwarded (acknowledged and deleted): still the flat's last fetch.
    for (let batch = box.peek(100, 10_000); batch.length > 0; batch = box.peek(100, 10_000)) box.ack(batch);
    expect(Object.fromEntries(lastFetches(file))).to.deep.equal({ '1': 3000, '2': 1500 });
    // A full outbox keeps nothing: the refused fetch is not a fetch.
    let seq = 1;
    let full = false;
    for (let i = 0; i < 1000 && !full; i++) {
      try {
        box.record([{ flatId: '3', fetchedAtMs: 4000 + i, readings: Array.from({ length: 50 }, () => r('heat', ++seq)) }]);
      } catch (err) {
        expect(err).to.be.instanceOf(OutboxFullError);
        full = true;
      }
    }
    const before = lastFetches(file).get('3');
    expect(() => box.record([{ flatId: '2', fetchedAtMs: 99_000, readings: [r('heat', 2)] }])).to.throw(OutboxFullError);
    expect(lastFetches(file).get('2')).to.equal(1500);
    expect(lastFetches(file).get('3')).to.equal(before);
    box.close();
  });

  it('lists dead letters and replays them into the outbox', () => {
    const box = new Outbox(join(dir.path, 'dead', 'outbox.sqlite'));
    box.record([
      { flatId: 'a', fetchedAtMs: 1, readings: [r('heat', 1)] },
      { flatId: 'b', fetchedAtMs: 2, readings: [r('heat', 1), r('heat', 2)] },
    ]);
    const [a, b] = box.peek(10, 100);
    box.deadLetter(a!.id, 'fetches[0].readings[0].unit must be 1 to 32 characters');
    box.deadLetter(b!.id, 'another reason');
    expect(box.size().fetches).to.equal(0);
    const dead = box.deadLetters();
    expect(dead.map((d) => [d.flatId, d.readings.length, d.reason])).to.deep.equal([
      ['a', 1, 'fetches[0].readings[0].unit must be 1 to 32 characters'],
      ['b', 2, 'another reason'],
    ]);
    expect(box.replayDeadLetters([dead[0]!.id])).to.equal(1);
    expect(box.peek(10, 100).map((f) => f.flatId)).to.deep.equal(['a']);
    expect(box.replayDeadLetters()).to.equal(1);
    expect(box.deadLetters()).to.deep.equal([]);
    expect(box.size()).to.deep.equal({ fetches: 2, readings: 3 });
    box.close();
  });
});

describe('outbox: devices whose seq goes backwards (epochs)', () => {
  const dir = tempDir('outbox-epochs');
  after(() => dir.cleanup());
  const at = (deviceId: string, seq: number, takenAtMs: number): DeviceReading => ({ deviceId, seq, takenAtMs, quantity: 'temperature', unit: 'Cel', value: seq });
  const all = (box: Outbox) => box.peek(1000, 100_000).flatMap((f) => f.readings.map((x) => `${x.deviceId}@${x.epoch}#${x.seq}`)).sort();

  it('knows its size without counting the table, and the size matches a count after every way rows come and go (a failed record, a dead letter, a replay by another process)', () => {
    const file = join(dir.path, 'size', 'outbox.sqlite');
    const box = new Outbox(file);
    const counted = () => {
      const db = new Database(file, { readonly: true });
      try {
        const row = db.prepare('SELECT count(*) AS fetches, coalesce(sum(reading_count), 0) AS readings FROM outbox').get() as { fetches: number; readings: number };
        return { fetches: row.fetches, readings: row.readings };
      } finally {
        db.close();
      }
    };
    const check = (what: string) => expect(box.size(), what).to.deep.equal(counted());
    box.record([
      { flatId: '1', fetchedAtMs: 1, readings: [r('heat', 1), r('heat', 2)] },
      { flatId: '2', fetchedAtMs: 1, readings: [] },
      { flatId: '3', fetchedAtMs: 1, readings: Array.from({ length: MAX_ROW_READINGS + 5 }, (_, i) => r('heat', i + 1)) },
    ]);
    check('after a record (an empty fetch and one split in two rows)');
    // A record that fails half-way (the second fetch cannot be written) keeps nothing, and counts nothing.
    const poisoned = { ...r('heat', 9), value: 1n as unknown as number };
    expect(() => box.record([{ flatId: '4', fetchedAtMs: 2, readings: [r('heat', 1)] }, { flatId: '5', fetchedAtMs: 2, readings: [poisoned] }])).to.throw();
    check('after a record that rolled back');
    const batch = box.peek(2, 100_000);
    box.ack(batch);
    check('after an ack');
    const [next] = box.peek(1, 100_000);
    box.deadLetter(next!.id, 'refused by storage');
    check('after a dead letter');
    // The CLI replays dead letters through its own connection while ingestion runs.
    const cli = new Outbox(file);
    expect(cli.replayDeadLetters()).to.equal(1);
    cli.close();
    check('after a replay by another process');
    box.record([{ flatId: '1', fetchedAtMs: 3, readings: [r('heat', 3)] }]);
    check('after recording again');
    box.close();
  });

  it('keeps the readings of a reset meter in a new epoch (before: dropped until its seq passed the old cursor)', () => {
    const box = new Outbox(join(dir.path, 'reset', 'outbox.sqlite'));
    box.record([{ flatId: '1', fetchedAtMs: 1, readings: [at('heat', 4999, 1000), at('heat', 5000, 2000), at('power', 7, 2000)] }]);
    const [rec] = box.record([{ flatId: '1', fetchedAtMs: 2, readings: [at('heat', 1, 3000), at('heat', 2, 4000), at('power', 7, 2000)] }]);
    expect(rec).to.deep.equal({ fresh: 2, missed: 0, holes: [], resets: 1 });
    expect(all(box)).to.deep.equal(['heat@0#4999', 'heat@0#5000', 'heat@1#1', 'heat@1#2', 'power@0#7']);
    // The new epoch's cursor works like any other: known readings are not taken twice.
    expect(box.record([{ flatId: '1', fetchedAtMs: 3, readings: [at('heat', 2, 4000), at('heat', 3, 5000)] }])[0]).to.deep.equal({ fresh: 1, missed: 0, holes: [], resets: 0 });
    box.close();
  });

  it('sees a reset even when the new life already passed a few readings: a seq at or below the cursor taken after it', () => {
    const box = new Outbox(join(dir.path, 'passed', 'outbox.sqlite'));
    box.record([{ flatId: '1', fetchedAtMs: 1, readings: [at('heat', 3, 3000)] }]);
    const [rec] = box.record([{ flatId: '1', fetchedAtMs: 2, readings: [3, 4, 5].map((s) => at('heat', s - 2, 10_000 + s)).concat([at('heat', 4, 10_100)]) }]);
    expect(rec!.resets).to.equal(1);
    expect(all(box)).to.deep.equal(['heat@0#3', 'heat@1#1', 'heat@1#2', 'heat@1#3', 'heat@1#4']);
    box.close();
  });

  it('does not take an answer repeating the last readings for a reset, and upgrades a cursor of an older version without a false reset', () => {
    const file = join(dir.path, 'upgrade', 'outbox.sqlite');
    new Outbox(file).close();
    const raw = new Database(file);
    raw.exec('DROP TABLE cursors; CREATE TABLE cursors (flat_id TEXT NOT NULL, device_id TEXT NOT NULL, last_seq INTEGER NOT NULL, PRIMARY KEY (flat_id, device_id)) WITHOUT ROWID');
    raw.prepare('INSERT INTO cursors VALUES (?, ?, ?)').run('1', 'heat', 10);
    raw.close();
    const box = new Outbox(file);
    expect(box.record([{ flatId: '1', fetchedAtMs: 1, readings: [at('heat', 9, 9_000_000), at('heat', 10, 9_500_000)] }])[0]).to.deep.equal({ fresh: 0, missed: 0, holes: [], resets: 0 });
    expect(box.record([{ flatId: '1', fetchedAtMs: 2, readings: [at('heat', 10, 9_500_000), at('heat', 11, 9_600_000)] }])[0]).to.deep.equal({ fresh: 1, missed: 0, holes: [], resets: 0 });
    box.close();
  });
});
