/** chaos validate on every experiment, local and cluster. */
import { expect } from 'chai';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, TOOLS_BIN, tempDir } from '@flatline/stack';
import { run } from './support/chaos-run.ts';

describe('the cluster variants of the experiments', () => {
  it('pass chaos validate (chaostoolkit-kubernetes drain_nodes/uncordon_node, NetworkPolicy, rendered VirtualServices), as do the local ones (http probes of the supervisor)', async function () {
    this.timeout(120000);
    const files = readdirSync(join(REPO_ROOT, 'chaos'))
      .flatMap((d) => ['experiment.cluster.json', 'experiment.json'].map((f) => join(REPO_ROOT, 'chaos', d, f)))
      .filter((f) => existsSync(f));
    expect(files).to.have.length.at.least(10);
    for (const f of files) {
      const { stderr, stdout } = await run(join(TOOLS_BIN, 'chaos'), ['--no-version-check', 'validate', f], { cwd: REPO_ROOT });
      expect(`${stdout}${stderr}`, f).to.include('experiment syntax and semantic look valid');
    }
  });

  it('chaos validate fails on a cluster experiment that names a function chaostoolkit-kubernetes lacks (the check can fail)', async function () {
    this.timeout(60000);
    const broken = tempDir('chaos-broken');
    try {
      const e = JSON.parse(readFileSync(join(REPO_ROOT, 'chaos', 'the-system-stays-reachable-when-a-node-fails', 'experiment.cluster.json'), 'utf8')) as { method: Array<{ provider: { func?: string } }> };
      e.method[0]!.provider.func = 'drain_nodez';
      const file = join(broken.path, 'experiment.json');
      (await import('node:fs')).writeFileSync(file, JSON.stringify(e));
      const res = await run(join(TOOLS_BIN, 'chaos'), ['--no-version-check', 'validate', file], { cwd: REPO_ROOT }).then(
        () => 0,
        (err: { code?: number }) => err.code ?? -1,
      );
      expect(res).to.not.equal(0);
    } finally {
      broken.cleanup();
    }
  });
});
