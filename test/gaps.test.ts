/** `flatline gaps` (the real command) against a real FerretDB: gaps are counted epoch by epoch. */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MongoClient } from 'mongodb';
import { heldReadings, Outbox } from '@flatline/ingestion';
import { REPO_ROOT, heldIn, seqGaps, tempDir, TestDatabase } from '@flatline/stack';

const run = promisify(execFile);

describe('flatline gaps (real command, real FerretDB)', function () {
  this.timeout(60000);
  const dir = tempDir('gaps');
  const db = new TestDatabase(join(dir.path, 'db'));
  let mongo: MongoClient;

  before(async () => {
    await db.start();
    mongo = new MongoClient(db.uri, { serverSelectionTimeoutMS: 3000 });
  });

  after(async () => {
    await mongo?.close();
    await db.stop();
    dir.cleanup();
  });

  const doc = (flat: string, epoch: number, seq: number) => ({ flat_id: flat, device_id: 'heat', epoch, seq, taken_at: new Date(1_700_000_000_000 + seq), quantity: 't', unit: 'Cel', value: seq, stored_at: new Date() });
  const gaps = async () => {
    const res = await run(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'cli', 'src', 'main.ts'), 'gaps', '--mongodb-uri', db.uri, '--json'], { cwd: REPO_ROOT }).then(
      (r) => ({ code: 0, stdout: r.stdout }),
      (e: { code: number; stdout: string }) => ({ code: e.code, stdout: e.stdout }),
    );
    return { code: res.code, report: JSON.parse(res.stdout) as { missing: number; devices: number; gaps: Array<{ flat: string; epoch: number; missing: number }> } };
  };

  it('sees no gap where a reset meter started again at 1, and a gap inside the new epoch', async () => {
    // A meter with 1..5, reset, then 1..3: no gap (before epochs: 3 readings "duplicated", and a reading at 6..8 would hide a real hole).
    await mongo.db().collection('readings').insertMany([1, 2, 3, 4, 5].map((s) => doc('reset-1', 0, s)).concat([1, 2, 3].map((s) => doc('reset-1', 1, s))));
    expect(await gaps()).to.deep.include({ code: 0 });
    // The new epoch loses its seq 5 of 4..6.
    await mongo.db().collection('readings').insertMany([4, 6].map((s) => doc('reset-1', 1, s)));
    const { code, report } = await gaps();
    expect(code).to.equal(1);
    expect(report.missing).to.equal(1);
    expect(report.devices).to.equal(1);
    expect(report.gaps.map((g) => [g.flat, g.epoch, g.missing])).to.deep.equal([['reset-1', 1, 1]]);
  });

  it('does not count a seq an outbox still holds (fresh fetches first leave holes while a backlog drains), and counts one nobody holds', async () => {
    const doc = (seq: number) => ({ flat_id: 'held-1', device_id: 'heat', epoch: 0, seq, taken_at: new Date(1_700_000_000_000 + seq * 1000), quantity: 't', unit: 'Cel', value: seq, stored_at: new Date() });
    await mongo.db().collection('readings').insertMany([1, 2, 6, 7].map(doc));
    // An outbox file as ingestion writes it, holding 3 and 4 (5 is nowhere: lost).
    const box = new Outbox(join(dir.path, 'outbox.sqlite'));
    box.record([{ flatId: 'held-1', fetchedAtMs: 1_700_000_010_000, readings: [3, 4].map((seq) => ({ deviceId: 'heat', seq, takenAtMs: 1_700_000_000_000 + seq * 1000, quantity: 't', unit: 'Cel', value: seq, epoch: 0 })) }]);
    box.close();
    const without = await seqGaps(db.uri);
    const mine = (g: Array<{ flat: string }>) => g.filter((x) => x.flat === 'held-1');
    expect(mine(without.gaps)).to.deep.equal([{ flat: 'held-1', device: 'heat', epoch: 0, missing: 3 }]);
    const report = await seqGaps(db.uri, undefined, heldIn(heldReadings(join(dir.path, 'outbox.sqlite'))));
    expect(mine(report.gaps), 'only 5 is missing').to.deep.equal([{ flat: 'held-1', device: 'heat', epoch: 0, missing: 1 }]);
    expect(report.held).to.equal(2);
  });
});

