/** What a killed `flatline up` left running is stopped by the next one: every kind of process the stack starts. */
import { expect } from 'chai';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { markerOf, ProcessRecord } from '../src/leftovers.ts';
import { freePort, startHaproxy } from '../src/haproxy.ts';
import { startToxiproxy } from '../src/toxiproxy.ts';
import { tempDir } from '../src/harness.ts';
import { buildService } from '../src/service-build.ts';

describe('leftovers: the processes an earlier run recorded', function () {
  this.timeout(30000);
  const dir = tempDir('leftovers');
  after(() => dir.cleanup());

  it('has a marker for every process the stack starts: its binary, or the start of its compiled main', async () => {
    for (const name of ['ferretdb', 'haproxy', 'toxiproxy']) expect(existsSync(markerOf(name)), `${name}: ${markerOf(name)}`).to.equal(true);
    for (const name of ['devices', 'storage', 'storage-1', 'query', 'query-0', 'ingestion-0', 'ingestion-12']) {
      const bundle = await buildService(name.replace(/-\d+$/, ''));
      expect(bundle.startsWith(markerOf(name)), `${name}: ${markerOf(name)} starts ${bundle}`).to.equal(true);
    }
  });

  it('stops a Toxiproxy left running by a killed run, found by its marker', async () => {
    const left = await startToxiproxy({ logFile: join(dir.path, 'toxiproxy.log'), detached: true });
    try {
      new ProcessRecord(dir.path).add('toxiproxy', left.process.pid, markerOf('toxiproxy'));
      const stopped = await new ProcessRecord(dir.path).stopLeftovers(3000);
      expect(stopped).to.deep.equal([`toxiproxy (pid ${left.process.pid})`]);
      expect(await left.process.exited).to.not.equal(undefined);
    } finally {
      await left.process.stop();
    }
  });

  it('stops a HAProxy left running by a killed run: the wrapper execs the cached binary, which the marker names', async () => {
    const stateDir = join(dir.path, 'haproxy');
    mkdirSync(stateDir, { recursive: true });
    const listen = `127.0.0.1:${await freePort('127.0.0.1')}`;
    const left = await startHaproxy({ frontends: [{ name: 'query', listen, servers: [{ name: 'query-0', address: '127.0.0.1:9' }] }], stateDir, logFile: join(dir.path, 'haproxy.log'), detached: true });
    try {
      expect(readFileSync(`/proc/${left.pid}/cmdline`, 'utf8'), 'the wrapper is not in the command line').to.not.include(join('.tools', 'bin', 'haproxy'));
      new ProcessRecord(dir.path).add('haproxy', left.pid, markerOf('haproxy'));
      const stopped = await new ProcessRecord(dir.path).stopLeftovers(3000);
      expect(stopped).to.deep.equal([`haproxy (pid ${left.pid})`]);
      expect(await left.exited).to.not.equal(undefined);
    } finally {
      await left.stop();
    }
  });
});
