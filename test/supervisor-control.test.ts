/** The supervisor's control socket: only its owner can reach it, whatever the umask. */
import { expect } from 'chai';
import { mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { callControl, serveControl, tempDir } from '@flatline/stack';

describe('the supervisor control socket', () => {
  const dir = tempDir('supervisor-control');
  after(() => dir.cleanup());

  it('is 0600 in a 0700 folder even under umask 000, and answers its owner', async () => {
    const socket = join(dir.path, 'control', 'control.sock');
    // A folder as a permissive umask leaves it, before the supervisor starts.
    mkdirSync(dirname(socket), { mode: 0o755 });
    const before = process.umask(0);
    let server: Awaited<ReturnType<typeof serveControl>>;
    try {
      server = await serveControl(socket, { nodes: () => [], nodeAction: () => Promise.reject(new Error('no nodes')) });
    } finally {
      process.umask(before);
    }
    try {
      const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);
      expect(statSync(socket).isSocket(), 'a socket').to.equal(true);
      expect(mode(socket), 'socket mode').to.equal('600');
      expect(mode(dirname(socket)), 'folder mode').to.equal('700');
      expect(await callControl(socket, 'GET', '/nodes', 5000)).to.deep.equal({ status: 200, body: [] });
    } finally {
      server.close();
    }
  });
});
