/** `flatline deadletters list|replay`, the real command against real outbox files. */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Outbox } from '@flatline/ingestion';
import { REPO_ROOT, tempDir } from '@flatline/stack';

const run = promisify(execFile);
const flatline = (...args: string[]) => run(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'cli', 'src', 'main.ts'), ...args], { cwd: REPO_ROOT });

describe('flatline deadletters (real command, real outbox files)', function () {
  this.timeout(60000);
  const dir = tempDir('deadletters');
  after(() => dir.cleanup());
  const file = (replica: string) => join(dir.path, 'ingestion', replica, 'outbox.sqlite');
  const reading = (seq: number) => ({ deviceId: 'heat', seq, takenAtMs: 1_700_000_000_000 + seq, quantity: 'temperature', unit: 'Cel', value: seq });

  before(() => {
    for (const [replica, flats] of [['ingestion-0', ['7', '8']], ['ingestion-1', ['9']]] as const) {
      const box = new Outbox(file(replica));
      box.record(flats.map((flatId, i) => ({ flatId, fetchedAtMs: 1_700_000_000_000 + i, readings: [reading(1), reading(2)] })));
      for (const f of box.peek(10, 100)) box.deadLetter(f.id, `fetches[0].readings[0].unit refused for flat ${f.flatId}`);
      box.close();
    }
  });

  it('lists every replica\'s dead letters with their reasons', async () => {
    const { stdout } = await flatline('deadletters', 'list', '--state-dir', dir.path, '--json');
    const listed = JSON.parse(stdout) as { deadLetters: Array<{ replica: string; flatId: string; readingCount: number; reason: string }>; readings: number };
    expect(listed.deadLetters.map((d) => [d.replica, d.flatId, d.readingCount])).to.have.deep.members([
      ['ingestion-0', '7', 2],
      ['ingestion-0', '8', 2],
      ['ingestion-1', '9', 2],
    ]);
    expect(listed.readings).to.equal(6);
    expect(listed.deadLetters.every((d) => d.reason.includes(`flat ${d.flatId}`))).to.equal(true);
    const text = await flatline('deadletters', 'list', '--state-dir', dir.path);
    expect(text.stdout).to.match(/3 dead letters, 6 readings/);
  });

  it('replays chosen ids of one replica, then all, back into the outboxes', async () => {
    const first = new Outbox(file('ingestion-0'));
    const [one] = first.deadLetters();
    first.close();
    const refused = await flatline('deadletters', 'replay', '--state-dir', dir.path, '--ids', String(one!.id)).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(refused?.code).to.equal(2);
    expect(refused?.stderr).to.match(/--ids needs --replica/);
    expect((await flatline('deadletters', 'replay', '--state-dir', dir.path, '--replica', 'ingestion-0', '--ids', String(one!.id))).stdout).to.match(/1 dead letters replayed/);
    const box0 = new Outbox(file('ingestion-0'));
    expect(box0.peek(10, 100).map((f) => f.flatId)).to.deep.equal([one!.flatId]);
    box0.close();
    expect((await flatline('deadletters', 'replay', '--state-dir', dir.path)).stdout).to.match(/2 dead letters replayed/);
    const { stdout } = await flatline('deadletters', 'list', '--state-dir', dir.path, '--json');
    expect((JSON.parse(stdout) as { deadLetters: unknown[] }).deadLetters).to.deep.equal([]);
    const box1 = new Outbox(file('ingestion-1'));
    expect(box1.size()).to.deep.equal({ fetches: 1, readings: 2 });
    box1.close();
  });
});
