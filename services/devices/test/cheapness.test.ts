import { expect } from 'chai';
import { Agent, request } from 'node:https';
import { splitHostPort } from '@flatline/platform';
import { start, stateDir } from './helpers.ts';

const MB = 1024 * 1024;

describe('cheapness: 10,000 flats × 3 devices in one process', function () {
  this.timeout(60000);

  it('holds no per-device state: heap grows by far less than 50 MB (printed, not a speed test)', async () => {
    const dir = stateDir(10_000);
    const heapBefore = process.memoryUsage().heapUsed;
    const sim = await start(dir.path);
    const agent = new Agent({ keepAlive: true, maxSockets: 8, ca: sim.caPem });
    try {
      const heapStarted = process.memoryUsage().heapUsed;
      // One poll of a spread of flats, to show every flat answers and nothing accumulates per flat.
      const { port } = splitHostPort(sim.https);
      const statuses = new Map<number, number>();
      for (let i = 0; i < 200; i++) {
        const id = String(1 + ((i * 7919) % 10_000));
        const c = dir.credentials.get(id)!;
        const status = await new Promise<number>((resolve, reject) => {
          const req = request(
            { host: '127.0.0.1', port, path: `/flat/${id}/measurements/`, agent, headers: { authorization: `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}` } },
            (res) => res.resume().on('end', () => resolve(res.statusCode ?? 0)),
          );
          req.on('error', reject);
          req.end();
        });
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
      const heapAfter = process.memoryUsage().heapUsed;
      console.log(
        `      heap used: before ${(heapBefore / MB).toFixed(1)} MB, started with 10,000 flats ${(heapStarted / MB).toFixed(1)} MB ` +
          `(+${((heapStarted - heapBefore) / MB).toFixed(1)}), after 200 polls ${(heapAfter / MB).toFixed(1)} MB; rss ${(process.memoryUsage().rss / MB).toFixed(0)} MB`,
      );
      expect([...statuses]).to.deep.equal([[200, 200]]);
      expect(heapStarted - heapBefore).to.be.below(50 * MB);
    } finally {
      agent.destroy();
      await sim.close();
      dir.cleanup();
    }
  });
});
