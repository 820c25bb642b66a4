import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { serviceEntry, REPO_ROOT } from '@flatline/stack';
import { EXIT_CONFIG, readEnv, int, hostPort, ConfigError } from '@flatline/platform';

function runService(service: string, env: Record<string, string>, args: string[] = []) {
  return spawnSync(process.execPath, ['--import', 'tsx', serviceEntry(service), ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 30000,
  });
}

describe('configuration', function () {
  this.timeout(60000);

  const cases: Array<[string, string, string]> = [
    ['storage', 'FLATLINE_STORAGE_LISTEN', 'not-an-address'],
    ['storage', 'FLATLINE_DB_TIMEOUT_MS', 'soon'],
    ['storage', 'FLATLINE_MONGODB_URI', 'postgres://x/y'],
    ['query', 'FLATLINE_QUERY_LISTEN', '127.0.0.1:99999'],
    ['query', 'FLATLINE_LOG_LEVEL', 'loud'],
    ['ingestion', 'FLATLINE_DEVICES_URL', 'ftp://127.0.0.1:8443'],
    ['ingestion', 'FLATLINE_DEVICES_URL', 'http://127.0.0.1:8443/flat/'],
    ['ingestion', 'FLATLINE_POLL_CONCURRENCY', '0'],
    ['ingestion', 'FLATLINE_STORAGE_ADDR', 'storage'],
  ];
  for (const [service, variable, value] of cases) {
    it(`${service} exits ${EXIT_CONFIG} naming ${variable} when it is ${JSON.stringify(value)}`, () => {
      const res = runService(service, { [variable]: value });
      expect(res.status, res.stderr).to.equal(EXIT_CONFIG);
      expect(res.stderr).to.contain(`bad configuration: ${variable}:`);
      expect(res.stderr).to.contain(JSON.stringify(value));
    });
  }

  it('ingestion exits 78 naming FLATLINE_POLL_TIMEOUT_MS when it is over 10 minutes', () => {
    const res = runService('ingestion', { FLATLINE_POLL_TIMEOUT_MS: '600001' });
    expect(res.status, res.stderr).to.equal(EXIT_CONFIG);
    expect(res.stderr).to.contain('bad configuration: FLATLINE_POLL_TIMEOUT_MS');
  });

  for (const service of ['storage', 'query', 'ingestion']) {
    it(`${service} --help names every variable it reads and exits 0`, () => {
      const res = runService(service, {}, ['--help']);
      expect(res.status, res.stderr).to.equal(0);
      expect(res.stdout).to.contain('FLATLINE_MONGODB_URI').and.contain('FLATLINE_DB_TIMEOUT_MS').and.contain(`FLATLINE_${service.toUpperCase()}_LISTEN`);
    });
  }

  it('readEnv takes defaults for unset and empty variables and refuses out-of-range numbers', () => {
    const spec = { A: int(5, 1, 10), B: hostPort('127.0.0.1:1') };
    expect(readEnv(spec, {})).to.deep.equal({ A: 5, B: '127.0.0.1:1' });
    expect(readEnv(spec, { A: '', B: 'localhost:0' })).to.deep.equal({ A: 5, B: 'localhost:0' });
    expect(() => readEnv(spec, { A: '11' })).to.throw(ConfigError, /^A: expected an integer from 1 to 10, got "11"$/);
    expect(() => readEnv(spec, { A: '2.5' })).to.throw(ConfigError, /^A:/);
  });
});
