/**
 * `npm run synth` and the secret seed (issue 12, item 7): a production synth
 * refuses to run without a seed the operator gives (--seed or
 * FLATLINE_SECRET_SEED) and never falls back to the public development seed;
 * the dev profile keeps that seed, says so on stderr, and labels every object
 * whose content comes from it.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Yaml } from 'cdk8s';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = join(ROOT, 'cdk8s', 'src', 'main.ts');
/** A seed as an operator makes one (`openssl rand -base64 32`). */
const SEED = 'bW9yZS10aGFuLTMyLWNoYXJhY3RlcnMtb2YtdGVzdC1zZWVk';
const JWT = ['--jwt-issuer', 'https://issuer.example', '--jwks-uri', 'https://issuer.example/.well-known/jwks.json'];
/** What synth reads from the environment: cleared, so a value in the test's own environment cannot make a test pass. */
const SYNTH_ENV = ['FLATLINE_SECRET_SEED', 'FLATLINE_JWT_ISSUER', 'FLATLINE_JWKS_URI', 'FLATLINE_JWT_AUDIENCES'];

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

function synth(args: string[], env: Record<string, string> = {}) {
  const base = { ...process.env };
  for (const name of SYNTH_ENV) delete base[name];
  return spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, encoding: 'utf8', env: { ...base, ...env } });
}

/** Every object of every file synth wrote into dir. */
function objectsIn(dir: string): Any[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.k8s.yaml'))
    .sort()
    .flatMap((f) => Yaml.load(join(dir, f)) as Any[]);
}

function secretData(objects: Any[], name: string, key: string): string {
  const secret = objects.find((o) => o.kind === 'Secret' && o.metadata.name === name);
  return Buffer.from(secret.data[key], 'base64').toString('utf8');
}

describe('npm run synth: the secret seed and the profile', function () {
  this.timeout(180_000);
  const dirs: string[] = [];
  const fresh = () => {
    const dir = mkdtempSync(join(tmpdir(), 'flatline-synth-profile-'));
    dirs.push(dir);
    return dir;
  };
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('a production synth without a seed exits non-zero, names --seed and FLATLINE_SECRET_SEED, and writes nothing', () => {
    const dir = fresh();
    const run = synth(['--outdir', dir]);
    expect(run.status, `stdout:\n${run.stdout}\nstderr:\n${run.stderr}`).to.not.equal(0);
    expect(run.stderr).to.contain('--seed');
    expect(run.stderr).to.contain('FLATLINE_SECRET_SEED');
    expect(run.stderr).to.contain('--profile dev');
    expect(readdirSync(dir)).to.deep.equal([]);
  });

  it('a production synth refuses the public development seed and a short seed', () => {
    const dev = synth(['--outdir', fresh(), '--seed', 'flatline-dev', ...JWT]);
    expect(dev.status, dev.stderr).to.not.equal(0);
    expect(dev.stderr).to.match(/public development seed/);
    const short = synth(['--outdir', fresh(), ...JWT], { FLATLINE_SECRET_SEED: 'abcdefghij' });
    expect(short.status, short.stderr).to.not.equal(0);
    expect(short.stderr).to.match(/at least 32 characters/);
  });

  it('with --seed or FLATLINE_SECRET_SEED it writes the same bytes; no object is labelled dev and no secret is the dev seed\'s', () => {
    const [flag, env, dev] = [fresh(), fresh(), fresh()];
    const a = synth(['--outdir', flag, '--seed', SEED, ...JWT]);
    expect(a.status, a.stderr).to.equal(0);
    expect(a.stderr, 'no dev warning in production').to.not.match(/dev profile/);
    const b = synth(['--outdir', env, ...JWT], { FLATLINE_SECRET_SEED: SEED });
    expect(b.status, b.stderr).to.equal(0);
    const files = readdirSync(flag).sort();
    expect(readdirSync(env).sort()).to.deep.equal(files);
    for (const f of files) expect(readFileSync(join(env, f)).equals(readFileSync(join(flag, f))), f).to.equal(true);

    const objects = objectsIn(flag);
    const secrets = objects.filter((o) => o.kind === 'Secret');
    expect(secrets.length).to.be.at.least(4);
    for (const o of objects) expect(o.metadata.labels?.['flatline.dev/profile'], `${o.kind}/${o.metadata.name}`).to.not.equal('dev');
    for (const s of secrets) expect(s.metadata.labels?.['flatline.dev/profile'], `Secret/${s.metadata.name}`).to.equal('production');

    const d = synth(['--outdir', dev, '--profile', 'dev']);
    expect(d.status, d.stderr).to.equal(0);
    const devObjects = objectsIn(dev);
    for (const [name, key] of [['mongo-root', 'password'], ['mongo-app', 'password'], ['mongo-keyfile', 'keyfile'], ['devices-ca-key', 'ca-key.pem']]) {
      expect(secretData(objects, name!, key!), `${name} ${key}`).to.not.equal(secretData(devObjects, name!, key!));
    }
  });

  it('the dev profile keeps the fixed seed, labels every Secret (and every object made from the seed) and warns on stderr', () => {
    const dir = fresh();
    const run = synth(['--outdir', dir, '--profile', 'dev']);
    expect(run.status, run.stderr).to.equal(0);
    expect(run.stderr).to.match(/dev profile/);
    expect(run.stderr).to.contain('"flatline-dev"');
    expect(run.stderr).to.match(/never apply .* to a cluster others can reach/i);
    const objects = objectsIn(dir);
    const secrets = objects.filter((o) => o.kind === 'Secret');
    expect(secrets.length).to.be.at.least(4);
    for (const s of secrets) {
      expect(s.metadata.labels?.['flatline.dev/profile'], `Secret/${s.metadata.name}`).to.equal('dev');
      expect(s.metadata.annotations?.['flatline.dev/secret-seed'], `Secret/${s.metadata.name}`).to.equal('insecure-dev-seed');
    }
    for (const [kind, name] of [['ConfigMap', 'devices-ca'], ['RequestAuthentication', 'query']]) {
      const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
      expect(o?.metadata.labels?.['flatline.dev/profile'], `${kind}/${name}`).to.equal('dev');
    }
  });

  it('--print-dev-token prints a token of the dev issuer and writes nothing; a production synth has none to print', () => {
    const dir = fresh();
    const run = synth(['--outdir', dir, '--profile', 'dev', '--print-dev-token']);
    expect(run.status, run.stderr).to.equal(0);
    expect(run.stdout).to.match(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const claims = JSON.parse(Buffer.from(run.stdout.split('.')[1]!, 'base64url').toString());
    expect(claims.iss).to.equal('flatline-dev-issuer');
    expect(readdirSync(dir)).to.deep.equal([]);
    const prod = synth(['--outdir', dir, '--seed', SEED, ...JWT, '--print-dev-token']);
    expect(prod.status).to.not.equal(0);
    expect(prod.stderr).to.contain('--print-dev-token needs --profile dev');
  });

  it('an unknown profile is refused', () => {
    const run = synth(['--outdir', fresh(), '--profile', 'staging', '--seed', SEED, ...JWT]);
    expect(run.status).to.not.equal(0);
    expect(run.stderr).to.contain('--profile must be production or dev, got "staging"');
  });
});
