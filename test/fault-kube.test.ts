import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, tempDir } from '@flatline/stack';
import { planOf } from '@flatline/mesh';

const run = promisify(execFile);

describe('flatline fault --kube (against a stand-in kubectl: no cluster here)', function () {
  this.timeout(60000);
  const dir = tempDir('kube');
  const state = join(dir.path, 'cluster.json');
  const kubectl = join(REPO_ROOT, 'test', 'support', 'fake-kubectl.mjs');
  const flatline = (...args: string[]) =>
    run(process.execPath, ['--import', 'tsx', 'cli/src/main.ts', 'fault', ...args, '--kube', '--kubectl', kubectl], { cwd: REPO_ROOT, env: { ...process.env, FAKE_KUBE_STATE: state } });
  const cluster = () => JSON.parse(readFileSync(state, 'utf8')) as Record<string, { metadata: { labels: Record<string, string> } }>;
  after(() => dir.cleanup());

  it('applies the fault VirtualService, keeps other faults, and restores the baseline on off', async () => {
    await flatline('on', 'devices-slow', '--flats', '7', '--delay', '30s');
    await flatline('on', 'storage-unavailable', '--percent', '50');
    const vs = cluster()['VirtualService/flatline/devices']!;
    expect(vs.metadata.labels['flatline.dev/route']).to.equal('fault');
    expect(planOf(vs as unknown as Record<string, unknown>).map((f) => f.name)).to.deep.equal(['devices-slow']);
    const status = JSON.parse((await flatline('status', '--json')).stdout) as Array<{ name: string }>;
    expect(status.map((f) => f.name).sort()).to.deep.equal(['devices-slow', 'storage-unavailable']);

    await flatline('off', 'devices-slow');
    expect(cluster()['VirtualService/flatline/devices']!.metadata.labels['flatline.dev/route']).to.equal('baseline');
    expect(cluster()['VirtualService/flatline/storage']!.metadata.labels['flatline.dev/route']).to.equal('fault');

    await flatline('off', '--all');
    for (const host of ['devices', 'storage', 'query']) expect(cluster()[`VirtualService/flatline/${host}`]!.metadata.labels['flatline.dev/route']).to.equal('baseline');
  });

  it('says clearly when kubectl cannot be run', async () => {
    const err = await run(process.execPath, ['--import', 'tsx', 'cli/src/main.ts', 'fault', 'off', '--all', '--kube', '--kubectl', '/nonexistent/kubectl'], { cwd: REPO_ROOT }).catch((e: { code: number; stderr: string }) => e);
    expect((err as { code: number }).code).to.equal(2);
    expect((err as { stderr: string }).stderr).to.contain('cannot run /nonexistent/kubectl');
  });
});
