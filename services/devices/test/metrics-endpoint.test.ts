/** GET /flat/<ID>/metrics over a real HTTPS server: credentials (own, shared when configured) and the exposition format. */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../src/config.ts';
import type { RunningSimulator } from '../src/simulator.ts';
import { eventually } from '@flatline/stack';
import { get, memoryLogger, start, stateDir } from './helpers.ts';

const SHARED = { user: 'prometheus', password: 'scrape-secret-0123' };
const PROMTOOL = join(import.meta.dirname, '..', '..', '..', '.tools', 'bin', 'promtool');

/** One sample line of the text format: name, labels, value, timestamp. */
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\} (-?\d+(?:\.\d+)?(?:e[+-]?\d+)?) (\d+)$/;

/** Parses exposition text strictly enough for a test: HELP/TYPE comments and timestamped samples, nothing else. */
function parseExposition(text: string): Array<{ name: string; labels: Record<string, string>; value: number; timestampMs: number }> {
  expect(text.endsWith('\n'), 'ends with a line feed').to.equal(true);
  const typed = new Set<string>();
  return text
    .slice(0, -1)
    .split('\n')
    .flatMap((line) => {
      const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      if (type !== null) typed.add(type[1]!);
      if (line.startsWith('#')) {
        expect(line, 'a comment is HELP or TYPE').to.match(/^# (HELP|TYPE) /);
        return [];
      }
      const m = SAMPLE.exec(line);
      expect(m, `a sample line: ${line}`).not.to.equal(null);
      expect(typed.has(m![1]!), `${m![1]} has a TYPE line before its samples`).to.equal(true);
      const labels = Object.fromEntries([...m![2]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!]));
      return [{ name: m![1]!, labels, value: Number(m![3]), timestampMs: Number(m![4]) }];
    });
}

describe('device API: GET /flat/<ID>/metrics (Prometheus text format)', function () {
  this.timeout(20000);
  const dir = stateDir(3);
  const own = (id: string) => ({ user: dir.credentials.get(id)!.username, password: dir.credentials.get(id)!.password });
  const log = memoryLogger('trace');
  let sim: RunningSimulator;
  let plain: RunningSimulator;

  before(async () => {
    const env = { FLATLINE_DEVICES_PERIOD_MS: '100', FLATLINE_DEVICES_WINDOW_MS: '2000' };
    sim = await start(dir.path, { ...env, FLATLINE_DEVICES_SCRAPE_CREDENTIAL: `${SHARED.user}:${SHARED.password}` }, log.logger);
    plain = await start(dir.path, { ...env, FLATLINE_DEVICES_LISTEN: '127.0.0.1:0' });
    await eventually('a reading of every device of flat 1', async () => {
      const doc = JSON.parse((await get(sim.https, '/flat/1/measurements/', { ca: sim.caPem, ...own('1') })).body) as { devices: Array<{ readings: unknown[] }> };
      return doc.devices.every((d) => d.readings.length > 0);
    }, 10000, 50);
  });

  after(async () => {
    await sim?.close();
    await plain?.close();
    dir.cleanup();
  });

  it('serves each device\'s latest reading and its seq, timestamped, with the flat\'s own credential', async () => {
    const res = await get(sim.https, '/flat/2/metrics', { ca: sim.caPem, ...own('2') });
    expect(res.status).to.equal(200);
    expect(res.headers['content-type']).to.equal('text/plain; version=0.0.4; charset=utf-8');
    const samples = parseExposition(res.body);
    const readings = samples.filter((s) => s.name === 'flatline_device_reading');
    const seqs = samples.filter((s) => s.name === 'flatline_device_reading_seq');
    expect(readings.map((s) => [s.labels['flat'], s.labels['device'], s.labels['unit']])).to.deep.equal([
      ['2', 'heat-1', 'Cel'],
      ['2', 'power-1', 'kWh'],
      ['2', 'water-1', 'm3'],
    ]);
    expect(seqs.map((s) => s.labels['device'])).to.deep.equal(['heat-1', 'power-1', 'water-1']);
    for (const s of samples) expect(s.timestampMs).to.be.within(Date.now() - 2000, Date.now());
    for (const s of seqs) expect(Number.isInteger(s.value) && s.value > 0).to.equal(true);
  });

  it('holds the same reading as the newest of /measurements/ (same seq and value, or the next one)', async () => {
    const json = JSON.parse((await get(sim.https, '/flat/1/measurements/', { ca: sim.caPem, ...own('1') })).body) as { devices: Array<{ device_id: string; readings: Array<{ seq: number; value: number }> }> };
    const samples = parseExposition((await get(sim.https, '/flat/1/metrics/', { ca: sim.caPem, ...own('1') })).body);
    for (const d of json.devices) {
      const last = d.readings.at(-1)!;
      const seq = samples.find((s) => s.name === 'flatline_device_reading_seq' && s.labels['device'] === d.device_id)!.value;
      const value = samples.find((s) => s.name === 'flatline_device_reading' && s.labels['device'] === d.device_id)!.value;
      // A reading may be taken between the two requests (one every 100 ms).
      expect(seq - last.seq).to.be.within(0, 2);
      if (seq === last.seq) expect(value).to.equal(last.value);
    }
  });

  it('passes promtool check metrics (where tools/install.sh prometheus has run)', function () {
    if (!existsSync(PROMTOOL)) this.skip();
    return get(sim.https, '/flat/3/metrics', { ca: sim.caPem, ...own('3') }).then((res) => {
      const check = spawnSync(PROMTOOL, ['check', 'metrics'], { input: res.body, encoding: 'utf8' });
      // Exit 1 is a parse error, 3 a lint problem (a missing HELP, a bad suffix): neither is acceptable.
      expect(check.status, `${check.stdout}${check.stderr}`).to.equal(0);
    });
  });

  it('accepts the shared scrape credential on every flat\'s /metrics, and only there', async () => {
    for (const id of ['1', '2', '3']) expect((await get(sim.https, `/flat/${id}/metrics`, { ca: sim.caPem, ...SHARED })).status, id).to.equal(200);
    expect((await get(sim.https, '/flat/1/measurements/', { ca: sim.caPem, ...SHARED })).status).to.equal(401);
  });

  it('answers 401 with a challenge to a wrong, missing or another flat\'s credential', async () => {
    const cases = [
      await get(sim.https, '/flat/1/metrics', { ca: sim.caPem }),
      await get(sim.https, '/flat/1/metrics', { ca: sim.caPem, user: SHARED.user, password: `${SHARED.password}x` }),
      await get(sim.https, '/flat/1/metrics', { ca: sim.caPem, user: 'other', password: SHARED.password }),
      await get(sim.https, '/flat/1/metrics', { ca: sim.caPem, ...own('2') }),
    ];
    for (const res of cases) {
      expect(res.status).to.equal(401);
      expect(res.headers['www-authenticate']).to.match(/^Basic realm=/);
      expect(res.body).not.to.include('flatline_device_reading');
    }
  });

  it('refuses the shared credential when none is configured, and still takes the flat\'s own', async () => {
    expect((await get(plain.https, '/flat/1/metrics', { ca: plain.caPem, ...SHARED })).status).to.equal(401);
    expect((await get(plain.https, '/flat/1/metrics', { ca: plain.caPem, ...own('1') })).status).to.equal(200);
  });

  it('answers 404 for an unknown flat', async () => {
    expect((await get(sim.https, '/flat/9/metrics', { ca: sim.caPem, ...SHARED })).status).to.equal(404);
  });

  it('never logs the shared credential', () => {
    expect(log.text()).not.to.include(SHARED.password);
  });
});

describe('FLATLINE_DEVICES_SCRAPE_CREDENTIAL', () => {
  it('is unset by default and reads user:password (a colon in the password too)', () => {
    expect(loadConfig({}).scrapeCredential).to.equal(undefined);
    expect(loadConfig({ FLATLINE_DEVICES_SCRAPE_CREDENTIAL: 'prom:pass:word-123' }).scrapeCredential).to.deep.equal({ username: 'prom', password: 'pass:word-123' });
  });

  for (const bad of ['no-colon-secret', ':password-only', 'user:short', `${'u'.repeat(129)}:long-enough-pw`]) {
    it(`refuses ${JSON.stringify(bad.slice(0, 20))} naming the variable, without showing the value`, () => {
      expect(() => loadConfig({ FLATLINE_DEVICES_SCRAPE_CREDENTIAL: bad }))
        .to.throw(/^FLATLINE_DEVICES_SCRAPE_CREDENTIAL: expected user:password/)
        .with.property('message')
        .that.does.not.include(bad.slice(bad.indexOf(':') + 1) || bad);
    });
  }
});
