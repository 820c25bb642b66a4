import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { get, stateDir } from './helpers.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MAIN = 'services/devices/src/main.ts';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs main with env until it exits. */
function run(env: Record<string, string>, args: string[] = []): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, env: { PATH: process.env['PATH'] ?? '', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('devices main (a real process)', function () {
  this.timeout(30000);
  const dir = stateDir(2);
  after(() => dir.cleanup());
  const env = (extra: Record<string, string> = {}) => ({
    FLATLINE_DEVICES_STATE_DIR: dir.path,
    FLATLINE_DEVICES_LISTEN: '127.0.0.1:0',
    FLATLINE_DEVICES_CONTROL_LISTEN: '127.0.0.1:0',
    FLATLINE_DEVICES_METRICS_LISTEN: '127.0.0.1:0',
    ...extra,
  });

  for (const [variable, value] of [
    ['FLATLINE_DEVICES_PER_FLAT', '99'],
    ['FLATLINE_DEVICES_CONTROL_LISTEN', '0.0.0.0:8444'],
    ['FLATLINE_DEVICES_CREDENTIALS', '/nonexistent/credentials.json'],
  ] as const) {
    it(`exits 78 naming ${variable} when it is ${value}`, async () => {
      const r = await run(env({ [variable]: value }));
      expect(r.code, r.stderr).to.equal(78);
      expect(r.stderr).to.match(new RegExp(`^flatline-devices: bad configuration: ${variable}: `));
    });
  }

  it('prints --help with every variable and exits 0', async () => {
    const r = await run({}, ['--help']);
    expect(r.code).to.equal(0);
    for (const v of ['FLATLINE_DEVICES_LISTEN', 'FLATLINE_DEVICES_CONTROL_LISTEN', 'FLATLINE_DEVICES_STATE_DIR', 'FLATLINE_DEVICES_CREDENTIALS', 'FLATLINE_DEVICES_TLS_NAMES']) {
      expect(r.stdout).to.include(v);
    }
  });

  it('logs one listening line with its addresses, serves, and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN], { cwd: ROOT, env: { PATH: process.env['PATH'] ?? '', ...env() } });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      const line = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no listening line in: ${out}`)), 20000);
        child.stdout.on('data', () => {
          const found = out.split('\n').find((l) => l.includes('"msg":"listening"'));
          if (found) {
            clearTimeout(timer);
            resolve(JSON.parse(found) as Record<string, unknown>);
          }
        });
      });
      expect(line).to.include({ flats: 2 });
      for (const key of ['https', 'control', 'metrics']) expect(line[key]).to.match(/^127\.0\.0\.1:\d+$/);
      const c = dir.credentials.get('2')!;
      const res = await get(line['https'] as string, '/flat/2/measurements/', { ca: readFileSync(`${dir.path}/ca.pem`, 'utf8'), user: c.username, password: c.password });
      expect(res.status).to.equal(200);
      expect(out.split('\n').filter((l) => l.includes('"msg":"listening"'))).to.have.length(1);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).to.equal(0);
    expect(out).to.include('"msg":"stopped"');
  });
});
