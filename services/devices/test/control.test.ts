import { expect } from 'chai';
import { request as httpsRequest } from 'node:https';
import { splitHostPort } from '@flatline/platform';
import { loadConfig } from '../src/config.ts';
import { startSimulator, type RunningSimulator } from '../src/simulator.ts';
import { eventually } from '@flatline/stack';
import { control, get, memoryLogger, start, stateDir } from './helpers.ts';

describe('control API: devices that answer like a broken third party', function () {
  this.timeout(20000);
  const dir = stateDir(3);
  const as = (id: string) => ({ user: dir.credentials.get(id)!.username, password: dir.credentials.get(id)!.password });
  let sim: RunningSimulator;
  const poll = (id = '1') => get(sim.https, `/flat/${id}/measurements/`, { ca: sim.caPem, ...as(id) });
  const set = async (flat: string, body: unknown) => {
    const res = await control(sim.control, 'PUT', `/behaviours/${flat}`, body);
    expect(res.status, JSON.stringify(res.json)).to.equal(200);
    return res.json;
  };

  before(async () => {
    sim = await start(dir.path, { FLATLINE_DEVICES_PERIOD_MS: '100', FLATLINE_DEVICES_WINDOW_MS: '1000' });
    await eventually('a reading of every device of flat 1', async () => {
      const doc = JSON.parse((await poll()).body) as { devices: Array<{ readings: unknown[] }> };
      return doc.devices.every((d) => d.readings.length > 0);
    }, 10000, 50);
  });
  afterEach(async () => {
    expect((await control(sim.control, 'DELETE', '/behaviours')).status).to.equal(200);
  });
  after(async () => {
    await sim?.close();
    dir.cleanup();
  });

  it('starts with every flat ok', async () => {
    expect((await control(sim.control, 'GET', '/behaviours')).json).to.deep.equal({ behaviours: {} });
    expect((await control(sim.control, 'GET', '/behaviours/2')).json).to.deep.equal({ flat_id: '2', mode: 'ok' });
  });

  it('http-500 and http-503 answer those statuses, only after authentication, only for that flat', async () => {
    expect(await set('1', { mode: 'http-500' })).to.deep.equal({ flat_id: '1', mode: 'http-500' });
    await set('2', { mode: 'http-503' });
    expect((await poll('1')).status).to.equal(500);
    expect((await poll('2')).status).to.equal(503);
    expect((await poll('3')).status).to.equal(200);
    const anonymous = await get(sim.https, '/flat/1/measurements/', { ca: sim.caPem });
    expect(anonymous.status).to.equal(401);
  });

  it('malformed-json answers 200 with a body that is not JSON', async () => {
    await set('1', { mode: 'malformed-json' });
    const res = await poll();
    expect(res.status).to.equal(200);
    expect(res.headers['content-type']).to.equal('application/json');
    expect(res.body.length).to.be.greaterThan(10);
    expect(() => JSON.parse(res.body)).to.throw(SyntaxError);
  });

  it('wrong-types answers valid JSON with seq and value as strings', async () => {
    await set('1', { mode: 'wrong-types' });
    const doc = JSON.parse((await poll()).body) as { devices: Array<{ readings: Array<Record<string, unknown>> }> };
    const r = doc.devices[0]!.readings[0]!;
    expect(typeof r['seq']).to.equal('string');
    expect(typeof r['value']).to.equal('string');
  });

  it('truncated-body promises more than it sends, then closes: the client sees an error', async () => {
    await set('1', { mode: 'truncated-body' });
    const err = await poll().then(
      (res) => new Error(`no error: ${res.status}, ${res.body.length} bytes`),
      (e: Error) => e,
    );
    expect(err.message).to.match(/aborted|socket hang up|ECONNRESET|premature/i);
    // Content-length says more than arrived.
    const partial = await new Promise<{ declared: number; received: number }>((resolve) => {
      const { port } = splitHostPort(sim.https);
      const auth = `Basic ${Buffer.from(`${as('1').user}:${as('1').password}`).toString('base64')}`;
      const req = httpsRequest({ host: '127.0.0.1', port, path: '/flat/1/measurements/', ca: sim.caPem, agent: false, headers: { authorization: auth } }, (res) => {
        let received = 0;
        res.on('data', (c: Buffer) => (received += c.length));
        res.on('close', () => resolve({ declared: Number(res.headers['content-length']), received }));
        res.on('error', () => undefined);
      });
      req.on('error', () => undefined);
      req.end();
    });
    expect(partial.received).to.be.greaterThan(0).and.below(partial.declared);
  });

  it('slow-body sends the headers and the first bytes, and the rest only after delay_ms', async () => {
    expect(await set('1', { mode: 'slow-body', delay_ms: 300 })).to.deep.equal({ flat_id: '1', mode: 'slow-body', delay_ms: 300 });
    const chunks: number[] = [];
    const started = Date.now();
    const { port } = splitHostPort(sim.https);
    const auth = `Basic ${Buffer.from(`${as('1').user}:${as('1').password}`).toString('base64')}`;
    const res = await new Promise<{ status: number; headersMs: number; body: string; endMs: number }>((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port, path: '/flat/1/measurements/', ca: sim.caPem, agent: false, headers: { authorization: auth } }, (r) => {
        const headersMs = Date.now() - started;
        let body = '';
        r.on('data', (c: Buffer) => {
          chunks.push(Date.now() - started);
          body += c.toString('utf8');
        });
        r.on('end', () => resolve({ status: r.statusCode ?? 0, headersMs, body, endMs: Date.now() - started }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(res.status).to.equal(200);
    expect(JSON.parse(res.body)).to.have.property('flat_id', '1'); // complete in the end
    expect(res.endMs).to.be.at.least(300); // the rest only after the delay
    expect(res.headersMs).to.be.below(chunks[chunks.length - 1]!); // headers first…
    expect(chunks.length).to.be.at.least(2); // …and the first bytes apart from the rest
    // Other flats are not held up.
    expect((await poll('2')).status).to.equal(200);
  });

  it('slow-body waits 30 s unless told otherwise', async () => {
    expect(await set('1', { mode: 'slow-body' })).to.deep.equal({ flat_id: '1', mode: 'slow-body', delay_ms: 30000 });
  });

  it('counts faults as faulted in the metrics', async () => {
    await set('3', { mode: 'http-503' });
    await poll('3');
    const text = await (await fetch(`http://${sim.metrics}/metrics`)).text();
    expect(text).to.match(/^flatline_devices_requests_total\{outcome="faulted",service="devices"\} [1-9]\d*$/m);
    expect(text).to.match(/^flatline_devices_faults_total\{mode="http-503",service="devices"\} [1-9]\d*$/m);
  });

  it('sets many flats at once, shows the map, and removes one or all', async () => {
    expect((await control(sim.control, 'PUT', '/behaviours', { flats: ['1', '2'], mode: 'http-503' })).json).to.deep.equal({ flats: 2, mode: 'http-503' });
    await set('3', { mode: 'slow-body', delay_ms: 5 });
    expect((await control(sim.control, 'GET', '/behaviours')).json).to.deep.equal({
      behaviours: { 1: { mode: 'http-503' }, 2: { mode: 'http-503' }, 3: { mode: 'slow-body', delay_ms: 5 } },
    });
    expect((await control(sim.control, 'DELETE', '/behaviours/2')).json).to.deep.equal({ flat_id: '2', mode: 'ok', removed: true });
    expect((await control(sim.control, 'DELETE', '/behaviours/2')).json).to.deep.equal({ flat_id: '2', mode: 'ok', removed: false });
    expect((await poll('2')).status).to.equal(200);
    await set('1', { mode: 'ok' });
    expect((await control(sim.control, 'GET', '/behaviours')).json).to.deep.equal({ behaviours: { 3: { mode: 'slow-body', delay_ms: 5 } } });
    expect((await control(sim.control, 'DELETE', '/behaviours')).json).to.deep.equal({ removed: 1 });
  });

  const bad: Array<[string, string, string, unknown, number, RegExp]> = [
    ['not JSON', 'PUT', '/behaviours/1', '{mode:', 400, /^body: not valid JSON/],
    ['an unknown mode', 'PUT', '/behaviours/1', { mode: 'on-fire' }, 400, /^mode must be one of/],
    ['a delay as text', 'PUT', '/behaviours/1', { mode: 'slow-body', delay_ms: '300' }, 400, /^delay_ms must be an integer/],
    ['an unknown field', 'PUT', '/behaviours/1', { mode: 'ok', flats: ['1'] }, 400, /^flats: unknown field/],
    ['an unknown flat in a bulk request', 'PUT', '/behaviours', { flats: ['1', '77'], mode: 'http-500' }, 400, /^flats\[1\]: unknown flat "77"/],
    ['no flats in a bulk request', 'PUT', '/behaviours', { mode: 'http-500' }, 400, /^flats must be an array/],
    ['an unknown flat', 'PUT', '/behaviours/77', { mode: 'http-500' }, 404, /^unknown flat "77"/],
    ['another path', 'GET', '/flat/1', undefined, 404, /^not found/],
  ];
  for (const [what, method, path, body, status, message] of bad) {
    it(`answers ${status} to ${what}, saying what is wrong`, async () => {
      const res = await control(sim.control, method, path, body);
      expect(res.status).to.equal(status);
      expect(res.json['error']).to.match(message);
      expect((await control(sim.control, 'GET', '/behaviours')).json).to.deep.equal({ behaviours: {} });
    });
  }

  it('answers 405 with Allow to other methods', async () => {
    const res = await control(sim.control, 'POST', '/behaviours', { mode: 'ok' });
    expect(res.status).to.equal(405);
    expect(res.headers['allow']).to.equal('GET, PUT, DELETE');
  });
});

describe('control API binding', () => {
  it('refuses a non-loopback address in the configuration, naming the variable', () => {
    for (const address of ['0.0.0.0:8444', '[::]:8444', '10.1.2.3:8444', 'devices.example.com:8444']) {
      expect(() => loadConfig({ FLATLINE_DEVICES_CONTROL_LISTEN: address }), address).to.throw(/^FLATLINE_DEVICES_CONTROL_LISTEN: the control port .* loopback/);
    }
    for (const address of ['127.0.0.1:0', '127.0.0.2:8444', '[::1]:8444', 'localhost:8444']) {
      expect(() => loadConfig({ FLATLINE_DEVICES_CONTROL_LISTEN: address }), address).not.to.throw();
    }
  });

  it('refuses to bind a non-loopback control address even when handed one directly, and binds nothing', async () => {
    const dir = stateDir(1);
    try {
      const config = { ...loadConfig({ FLATLINE_DEVICES_STATE_DIR: dir.path, FLATLINE_DEVICES_LISTEN: '127.0.0.1:0' }), controlListen: '0.0.0.0:0' };
      const err = await startSimulator(config, memoryLogger('silent').logger).then(() => undefined, (e: Error) => e);
      expect(err?.message).to.match(/^FLATLINE_DEVICES_CONTROL_LISTEN: .*loopback/);
    } finally {
      dir.cleanup();
    }
  });
});

describe('logs', function () {
  this.timeout(20000);

  it('never carry a password or an Authorization header, even at trace level', async () => {
    const dir = stateDir(2);
    const { logger, text } = memoryLogger('trace');
    const sim = await start(dir.path, { FLATLINE_DEVICES_PERIOD_MS: '100' }, logger);
    try {
      const c = dir.credentials.get('1')!;
      const wrong = 'Wr0ng-Passw0rd-Attempt';
      await get(sim.https, '/flat/1/measurements/', { ca: sim.caPem, user: c.username, password: c.password });
      await get(sim.https, '/flat/1/measurements/', { ca: sim.caPem, user: c.username, password: wrong });
      await get(sim.https, '/flat/2/measurements/', { ca: sim.caPem, user: c.username, password: c.password });
      await control(sim.control, 'PUT', '/behaviours/1', { mode: 'http-500' });
      await get(sim.https, '/flat/1/measurements/', { ca: sim.caPem, user: c.username, password: c.password });
      await control(sim.control, 'PUT', '/behaviours/1', { mode: 'nonsense' });
    } finally {
      await sim.close();
    }
    const log = text();
    expect(log).to.include('"outcome":"unauthorized"'); // the requests were logged
    expect(log).to.include('behaviour set');
    for (const [id, c] of dir.credentials) {
      expect(log, `password of flat ${id}`).not.to.include(c.password);
      expect(log).not.to.include(Buffer.from(`${c.username}:${c.password}`).toString('base64'));
    }
    expect(log).not.to.include('Wr0ng-Passw0rd-Attempt');
    expect(log).not.to.include(Buffer.from(`flat-1:Wr0ng-Passw0rd-Attempt`).toString('base64'));
    expect(log.toLowerCase()).not.to.include('authorization');
    dir.cleanup();
  });
});
