import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { Agent, request as httpsRequest } from 'node:https';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunningSimulator } from '../src/simulator.ts';
import { ensureTlsMaterial } from '../src/state/tls-files.ts';
import { eventually } from '@flatline/stack';
import { get, start, stateDir, type Answer } from './helpers.ts';

interface Doc {
  flat_id: string;
  generated_at: string;
  devices: Array<{ device_id: string; quantity: string; unit: string; readings: Array<{ seq: number; taken_at: string; value: number }> }>;
}

async function metricsText(address: string): Promise<string> {
  return (await fetch(`http://${address}/metrics`)).text();
}

function counter(text: string, outcome: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`flatline_devices_requests_total{outcome="${outcome}"`));
  return Number(line?.split(' ').pop() ?? NaN);
}

describe('device API over HTTPS', function () {
  this.timeout(20000);
  const dir = stateDir(3);
  const creds = (id: string) => dir.credentials.get(id)!;
  const as = (id: string) => ({ user: creds(id).username, password: creds(id).password });
  let sim: RunningSimulator;
  let ca: string;
  const poll = (id: string, path = `/flat/${id}/measurements/`): Promise<Answer> => get(sim.https, path, { ca, ...as(id) });

  before(async () => {
    sim = await start(dir.path, { FLATLINE_DEVICES_PERIOD_MS: '100', FLATLINE_DEVICES_WINDOW_MS: '2000' });
    ca = sim.caPem;
    // The tests below read a window with at least 10 readings per device (100 ms apart).
    await eventually('each device of flat 2 to have 10 readings in its window', async () => {
      const doc = JSON.parse((await poll('2')).body) as Doc;
      return doc.devices.every((d) => d.readings.length >= 10);
    }, 10000, 100);
  });

  after(async () => {
    await sim?.close();
    dir.cleanup();
  });

  it('answers 200 with every device and its readings of the window, numbered without a gap, oldest first', async () => {
    const res = await poll('2');
    expect(res.status).to.equal(200);
    expect(res.headers['content-type']).to.equal('application/json');
    const doc = JSON.parse(res.body) as Doc;
    expect(doc.flat_id).to.equal('2');
    expect(new Date(doc.generated_at).toISOString()).to.equal(doc.generated_at);
    expect(doc.devices.map((d) => [d.device_id, d.quantity, d.unit])).to.deep.equal([
      ['heat-1', 'temperature', 'Cel'],
      ['power-1', 'electricity', 'kWh'],
      ['water-1', 'water', 'm3'],
    ]);
    const now = Date.parse(doc.generated_at);
    for (const d of doc.devices) {
      expect(d.readings.length, d.device_id).to.be.within(10, 20);
      d.readings.forEach((r, i) => {
        expect(r.taken_at).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        expect(r.value).to.be.a('number');
        const t = Date.parse(r.taken_at);
        expect(t).to.be.greaterThan(now - 2000).and.at.most(now);
        const prev = d.readings[i - 1];
        if (prev !== undefined) {
          expect(r.seq).to.equal(prev.seq + 1);
          expect(t - Date.parse(prev.taken_at)).to.equal(100);
        }
      });
    }
    // Devices read at their own phase, not all at once.
    expect(new Set(doc.devices.map((d) => Date.parse(d.readings[0]!.taken_at) % 100)).size).to.be.greaterThan(1);
  });

  it('accepts the path without its trailing slash, and with a query string', async () => {
    expect((await poll('1', '/flat/1/measurements')).status).to.equal(200);
    expect((await poll('1', '/flat/1/measurements/?x=1')).status).to.equal(200);
  });

  it('answers 401 with a Basic challenge to missing or wrong credentials, and to another flat\'s', async () => {
    const cases: Answer[] = [
      await get(sim.https, '/flat/1/measurements/', { ca }),
      await get(sim.https, '/flat/1/measurements/', { ca, user: creds('1').username, password: `${creds('1').password}x` }),
      await get(sim.https, '/flat/1/measurements/', { ca, user: 'flat-9', password: creds('1').password }),
      await get(sim.https, '/flat/1/measurements/', { ca, ...as('2') }),
    ];
    for (const res of cases) {
      expect(res.status).to.equal(401);
      expect(res.headers['www-authenticate']).to.equal('Basic realm="flatline devices", charset="UTF-8"');
      expect(res.body).not.to.include('readings');
    }
  });

  it('answers 404 for an unknown flat (credentials or not) exactly as for an unknown path', async () => {
    const unknownFlat = await get(sim.https, '/flat/4/measurements/', { ca, ...as('1') });
    const noCredentials = await get(sim.https, '/flat/4/measurements/', { ca });
    const unknownPath = await get(sim.https, '/flat/1/readings/', { ca, ...as('1') });
    const root = await get(sim.https, '/', { ca });
    for (const res of [unknownFlat, noCredentials, unknownPath, root]) {
      expect(res.status).to.equal(404);
      expect(res.body).to.equal(unknownFlat.body);
    }
  });

  it('answers 405 with Allow: GET to other methods', async () => {
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const res = await get(sim.https, '/flat/1/measurements/', { ca, method, ...as('1') });
      expect(res.status, method).to.equal(405);
      expect(res.headers['allow']).to.equal('GET');
    }
  });

  it('counts each outcome in flatline_devices_requests_total', async () => {
    const text = await metricsText(sim.metrics);
    expect(counter(text, 'ok')).to.be.at.least(3);
    expect(counter(text, 'unauthorized')).to.be.at.least(4);
    expect(counter(text, 'not_found')).to.be.at.least(4);
    expect(counter(text, 'method_not_allowed')).to.be.at.least(3);
    expect(counter(text, 'faulted')).to.equal(0);
    expect(text).to.match(/^flatline_devices_flats\{service="devices"\} 3$/m);
  });

  it('keeps connections alive between requests', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca });
    try {
      const reused: boolean[] = [];
      for (let i = 0; i < 5; i++) {
        await new Promise<void>((resolve, reject) => {
          const auth = `Basic ${Buffer.from(`${creds('3').username}:${creds('3').password}`).toString('base64')}`;
          const req = httpsRequest(`https://localhost:${sim.https.split(':')[1]}/flat/3/measurements/`, { agent, headers: { authorization: auth } }, (res) => {
            expect(res.statusCode).to.equal(200);
            expect(res.headers['connection']).to.equal('keep-alive');
            res.resume().on('end', resolve);
          });
          reused.push(false);
          req.on('socket', () => (reused[i] = req.reusedSocket));
          req.on('error', reject);
          req.end();
        });
      }
      expect(reused).to.deep.equal([false, true, true, true, true]);
    } finally {
      agent.destroy();
    }
  });

  describe('TLS', () => {
    it('verifies against ca.pem, by name and by address', async () => {
      expect((await get(sim.https, '/flat/1/measurements/', { ca, ...as('1'), servername: 'localhost' })).status).to.equal(200);
      expect((await get(sim.https, '/flat/1/measurements/', { ca, ...as('1'), host: 'localhost' })).status).to.equal(200);
      expect((await get(sim.https, '/flat/1/measurements/', { ca, ...as('1') })).status).to.equal(200); // 127.0.0.1, an IP SAN
    });

    it('fails without ca.pem: the certificate really is checked (negative control)', async () => {
      const err = await get(sim.https, '/flat/1/measurements/', { ...as('1') }).then(
        () => undefined,
        (e: NodeJS.ErrnoException) => e,
      );
      expect(err?.code).to.match(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY/);
    });

    it('fails with another CA, and for a name the certificate does not carry', async () => {
      const other = stateDir(0);
      try {
        const otherCa = (await ensureTlsMaterial(other.path, [])).caPem;
        const wrongCa = await get(sim.https, '/', { ca: otherCa }).then(() => undefined, (e: NodeJS.ErrnoException) => e);
        expect(wrongCa?.code).to.match(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|CERT_SIGNATURE_FAILURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY/);
      } finally {
        other.cleanup();
      }
      const wrongName = await get(sim.https, '/', { ca, servername: 'devices.example.com' }).then(() => undefined, (e: NodeJS.ErrnoException) => e);
      expect(wrongName?.code).to.equal('ERR_TLS_CERT_ALTNAME_INVALID');
    });
  });
});

describe('state folder', function () {
  this.timeout(30000);
  let dir: ReturnType<typeof stateDir>;
  beforeEach(() => (dir = stateDir(2)));
  afterEach(() => dir.cleanup());

  const poll = async (sim: RunningSimulator, id = '1'): Promise<Doc> => {
    const c = dir.credentials.get(id)!;
    const res = await get(sim.https, `/flat/${id}/measurements/`, { ca: sim.caPem, user: c.username, password: c.password });
    expect(res.status).to.equal(200);
    return JSON.parse(res.body) as Doc;
  };
  const readingsOf = (doc: Doc, device: string) => doc.devices.find((d) => d.device_id === device)!.readings;

  it('creates a CA and a server certificate for localhost, 127.0.0.1, ::1 and the extra names; keys are 0600', async () => {
    const sim = await start(dir.path, { FLATLINE_DEVICES_TLS_NAMES: 'devices.flatline.svc.cluster.local, devices,10.0.0.7' });
    await sim.close();
    for (const f of ['ca-key.pem', 'server-key.pem']) expect(statSync(join(dir.path, f)).mode & 0o777, f).to.equal(0o600);
    const ca = new X509Certificate(sim.caPem);
    expect(ca.ca).to.equal(true);
    const cert = new X509Certificate(readFileSync(join(dir.path, 'server.pem')));
    expect(cert.checkIssued(ca) && cert.verify(ca.publicKey)).to.equal(true);
    for (const host of ['localhost', 'devices.flatline.svc.cluster.local', 'devices']) expect(cert.checkHost(host), host).to.equal(host);
    for (const ip of ['127.0.0.1', '::1', '10.0.0.7']) expect(cert.checkIP(ip), ip).to.equal(ip);
    expect(cert.checkHost('example.com')).to.equal(undefined);
  });

  it('reuses its files on a later start, and makes only the server certificate again when it is missing', async () => {
    const read = (f: string) => readFileSync(join(dir.path, f), 'utf8');
    await (await start(dir.path)).close();
    const first = Object.fromEntries(['ca.pem', 'ca-key.pem', 'server.pem', 'server-key.pem', 'epoch.json'].map((f) => [f, read(f)]));
    await (await start(dir.path)).close();
    for (const [f, text] of Object.entries(first)) expect(read(f), f).to.equal(text);
    rmSync(join(dir.path, 'server.pem'));
    const sim = await start(dir.path);
    try {
      expect(read('ca.pem')).to.equal(first['ca.pem']);
      expect(read('server.pem')).not.to.equal(first['server.pem']);
      // The old ca.pem (what clients trust) still verifies the new certificate.
      await poll(Object.assign(sim, { caPem: first['ca.pem']! }));
    } finally {
      await sim.close();
    }
  });

  it('makes the server certificate again when the names change', async () => {
    await (await start(dir.path)).close();
    const before = readFileSync(join(dir.path, 'server.pem'), 'utf8');
    await (await start(dir.path, { FLATLINE_DEVICES_TLS_NAMES: 'devices.flatline' })).close();
    const cert = new X509Certificate(readFileSync(join(dir.path, 'server.pem')));
    expect(cert.toString()).not.to.equal(before);
    expect(cert.checkHost('devices.flatline')).to.equal('devices.flatline');
  });

  it('refuses to start with ca.pem but no ca-key.pem, rather than make a CA no client trusts', async () => {
    await (await start(dir.path)).close();
    rmSync(join(dir.path, 'ca-key.pem'));
    const err = await start(dir.path).then(() => undefined, (e: Error) => e);
    expect(err?.message).to.match(/ca-key\.pem is missing but .*ca\.pem exists/);
  });

  it('fails naming FLATLINE_DEVICES_CREDENTIALS when the credentials file is missing, and makes no file', async () => {
    rmSync(join(dir.path, 'credentials.json'));
    const err = await start(dir.path).then(() => undefined, (e: Error) => e);
    expect(err?.name).to.equal('ConfigError');
    expect(err?.message).to.match(/^FLATLINE_DEVICES_CREDENTIALS: cannot read credentials file .*credentials\.json/);
    expect(readdirSync(dir.path)).to.deep.equal([]);
  });

  it('fails naming epoch.json when it is malformed', async () => {
    writeFileSync(join(dir.path, 'epoch.json'), '{"version":1}');
    const err = await start(dir.path).then(() => undefined, (e: Error) => e);
    expect(err?.message).to.match(/epoch\.json is malformed/);
  });

  it('carries seq on across a restart: the second poll overlaps the first, reading for reading', async () => {
    const env = { FLATLINE_DEVICES_PERIOD_MS: '100', FLATLINE_DEVICES_WINDOW_MS: '3000' };
    let sim = await start(dir.path, env);
    let first!: Doc;
    await eventually('5 readings of each device before the restart', async () => {
      first = await poll(sim);
      return first.devices.every((d) => d.readings.length >= 5);
    }, 10000, 100);
    await sim.close();
    sim = await start(dir.path, env);
    let second!: Doc;
    await eventually('a reading newer than the first answer after the restart', async () => {
      second = await poll(sim);
      return first.devices.every((d) => readingsOf(second, d.device_id).at(-1)!.seq > d.readings.at(-1)!.seq);
    }, 10000, 100);
    await sim.close();
    for (const device of ['heat-1', 'power-1', 'water-1']) {
      const a = readingsOf(first, device);
      const b = readingsOf(second, device);
      expect(a.length, device).to.be.at.least(5);
      expect(b[0]!.seq, device).to.equal(a[0]!.seq); // the whole first answer is still in the window
      expect(b.slice(0, a.length), device).to.deep.equal(a);
      expect(b[b.length - 1]!.seq).to.be.greaterThan(a[a.length - 1]!.seq);
    }
  });

  it('carries seq on without a gap or a repeat when restarted with another period', async () => {
    let sim = await start(dir.path, { FLATLINE_DEVICES_PERIOD_MS: '100', FLATLINE_DEVICES_WINDOW_MS: '5000' });
    let first!: Doc;
    await eventually('5 readings of each device at 100 ms', async () => {
      first = await poll(sim);
      return first.devices.every((d) => d.readings.length >= 5);
    }, 10000, 100);
    await sim.close();
    sim = await start(dir.path, { FLATLINE_DEVICES_PERIOD_MS: '250', FLATLINE_DEVICES_WINDOW_MS: '5000' });
    let second!: Doc;
    const steps = (doc: Doc, device: string): number[] => readingsOf(doc, device).slice(1).map((r, i) => Date.parse(r.taken_at) - Date.parse(readingsOf(doc, device)[i]!.taken_at));
    await eventually('a 250 ms step after the restart, on every device', async () => {
      second = await poll(sim);
      return first.devices.every((d) => steps(second, d.device_id).includes(250));
    }, 10000, 100);
    await sim.close();
    const epoch = JSON.parse(readFileSync(join(dir.path, 'epoch.json'), 'utf8')) as { segments: Array<{ period_ms: number }> };
    expect(epoch.segments.map((s) => s.period_ms)).to.deep.equal([100, 250]);
    for (const device of ['heat-1', 'power-1', 'water-1']) {
      const a = readingsOf(first, device);
      const b = readingsOf(second, device);
      expect(b.map((r) => r.seq), device).to.deep.equal(b.map((_, i) => b[0]!.seq + i));
      expect(b.slice(0, a.length)).to.deep.equal(a);
      const steps = b.slice(1).map((r, i) => Date.parse(r.taken_at) - Date.parse(b[i]!.taken_at));
      expect(steps.some((s) => s === 250), device).to.equal(true);
    }
  });
});
