import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp } from '../src/app.ts';
import { DEV_SETTINGS, imageOf } from '../src/settings.ts';
import type { K8sObject } from './manifest-checks.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

/** The Dockerfile's instructions, continuation lines joined and comments dropped. */
function instructions(text: string): Array<{ op: string; args: string }> {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => ({ op: l.split(/\s+/)[0]!.toUpperCase(), args: l.slice(l.split(/\s+/)[0]!.length).trim() }));
}

describe('the image the charts run (Dockerfile)', () => {
  const dockerfile = instructions(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
  const runtime = dockerfile.slice(dockerfile.findLastIndex((i) => i.op === 'FROM'));

  it('runs as the charts\' numeric user, with node --import tsx as its entrypoint', () => {
    const uid = runtime.find((i) => i.op === 'ARG' && i.args.startsWith('UID='))?.args.slice(4);
    expect(Number(uid)).to.equal(DEV_SETTINGS.uid);
    expect(runtime.find((i) => i.op === 'USER')?.args).to.equal('${UID}:${UID}');
    expect(JSON.parse(runtime.find((i) => i.op === 'ENTRYPOINT')!.args)).to.deep.equal(['node', '--import', 'tsx']);
    expect(imageOf(DEV_SETTINGS)).to.equal('localhost:5001/flatline:dev');
  });

  it('copies every workspace\'s package.json before npm ci, and the sources after it', () => {
    const workspaces = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] }).workspaces;
    const ci = dockerfile.findIndex((i) => i.op === 'RUN' && /\bnpm ci\b/.test(i.args));
    expect(ci).to.be.above(0);
    const before = dockerfile.slice(0, ci).filter((i) => i.op === 'COPY').map((i) => i.args.split(/\s+/)[0]);
    for (const w of workspaces) expect(before, w).to.include(`${w}/package.json`);
    expect(before).to.include.members(['package.json']);
    const after = dockerfile.slice(ci).filter((i) => i.op === 'COPY' && !i.args.startsWith('--from')).map((i) => i.args.split(/\s+/)[0]);
    expect(after).to.include.members(['proto/gen', 'services', 'mesh/src']);
  });

  it('holds every entry point a chart\'s container runs with the image', async () => {
    const app = await buildApp(DEV_SETTINGS);
    const objects = app.charts.flatMap((c) => c.toJson() as K8sObject[]);
    const containers = objects.flatMap((o: Any) => [...(o.spec?.template?.spec?.containers ?? []), ...(o.spec?.template?.spec?.initContainers ?? [])]).filter((c: Any) => c.image === imageOf(DEV_SETTINGS));
    expect(containers.length).to.be.at.least(4);
    for (const c of containers) {
      if (c.command[0] === 'sh') continue; // the simulator's init container: the image's /bin/sh
      expect(c.command.slice(0, 3), c.name).to.deep.equal(['node', '--import', 'tsx']);
      expect(c.command[3], c.name).to.match(/^services\/[a-z]+\/src\/main\.ts$/);
      expect(existsSync(join(ROOT, c.command[3])), c.command[3]).to.equal(true);
    }
  });
});
