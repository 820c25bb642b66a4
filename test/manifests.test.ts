/**
 * The synthesized Kubernetes manifests are checked by the real validators,
 * as a cluster would check them, with no cluster here:
 *
 * - `istioctl validate -f` (Istio 1.30's own validation of every object:
 *   catches what a CRD schema cannot, such as a fault percentage above 100);
 * - `istioctl analyze --use-kube=false -A` (cross-object analysis: missing
 *   gateways, subsets, hosts), on the baseline and with each fault applied;
 * - `kubeconform -strict` against schemas generated offline by
 *   tools/install-kubeconform.sh (Kubernetes 1.33 and Istio's CRDs): unknown or
 *   misspelled fields and wrong types fail.
 *
 * Each validator is also shown a deliberately broken object and must fail on
 * it, so a green run cannot come from a validator that never says no.
 *
 * The production profile is what is checked in full (a seed and a JWT issuer
 * as an operator gives them); the dev profile, which Tilt applies, differs
 * in labels and in query's JWT issuer (its keys inline), and is checked too.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { REPO_ROOT, TOOLS_BIN } from '@flatline/stack';

const istioctl = join(TOOLS_BIN, 'istioctl');
const kubeconform = join(TOOLS_BIN, 'kubeconform');
const schemas = join(REPO_ROOT, '.tools', 'kubeconform-schemas');
// Core kinds by kubeconform's own naming, CRDs by the CRDs-catalog one (see tools/kubeconform-schemas.py).
const schemaLocations = [`${schemas}/{{.ResourceKind}}{{.KindSuffix}}.json`, `${schemas}/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json`];

/**
 * Findings accepted on purpose. Each says which tool, which message, on which
 * files, and why it is harmless; anything else fails the test.
 */
const ALLOWED: ReadonlyArray<{ tool: 'validate' | 'analyze'; file: RegExp; message: RegExp; why: string }> = [
  // None: a device fault with no flats chosen renders as the last, catch-all
  // route, with no unreachable baseline behind it (IST0130 used to be here).
];

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; never rejects on a non-zero exit. */
function run(cmd: string, args: string[], timeout = 120000, env: NodeJS.ProcessEnv = process.env): Promise<Result> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd: REPO_ROOT, timeout, maxBuffer: 64 * 1024 * 1024, env }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') reject(err);
      else resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
    });
  });
}

/** The issuer a production synth is given here, as an operator would give one. */
const JWT = { issuer: 'https://login.example.org/realms/flatline', jwksUri: 'https://login.example.org/realms/flatline/protocol/openid-connect/certs' };

/** Synthesizes a profile into a fresh folder (production: seed and issuer from the environment, as an operator's CI would give them). Returns the folder. */
async function synth(into: string, profile: 'production' | 'dev'): Promise<string> {
  const main = join(REPO_ROOT, 'cdk8s', 'src', 'main.ts');
  const env =
    profile === 'production'
      ? { ...process.env, FLATLINE_SECRET_SEED: 'bWFuaWZlc3RzLXRlc3Qtc2VlZC1vZi1hbi1vcGVyYXRvcg', FLATLINE_JWT_ISSUER: JWT.issuer, FLATLINE_JWKS_URI: JWT.jwksUri }
      : process.env;
  const args = ['--import', 'tsx', main, '--outdir', into, ...(profile === 'dev' ? ['--profile', 'dev'] : [])];
  const res = await run(process.execPath, args, 180000, env);
  expect(res.code, `synth failed:\n${res.stdout}${res.stderr}`).to.equal(0);
  return into;
}

function manifestsIn(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => /\.(ya?ml|json)$/.test(f))
    .sort()
    .map((f) => join(dir, f));
}

/** Messages `istioctl validate` printed as warnings ("has warnings:" followed by "\t* …" lines). */
function validateWarnings(out: string): string[] {
  const warnings: string[] = [];
  let inWarnings = false;
  for (const line of out.split('\n')) {
    if (/ has warnings:\s*$/.test(line)) inWarnings = true;
    else if (inWarnings && line.startsWith('\t* ')) warnings.push(line.slice(3).trim());
    else if (line.trim() !== '') inWarnings = false;
  }
  return warnings;
}

interface AnalyzerMessage {
  code: string;
  level: 'Error' | 'Warning' | 'Info';
  message: string;
  origin: string;
  /** file:line the finding is about (absent for some analyzers) */
  reference?: string;
}

async function analyze(files: string[]): Promise<{ res: Result; messages: AnalyzerMessage[] }> {
  // -A: without it istioctl analyzes the "default" namespace only and silently skips ours.
  const res = await run(istioctl, ['analyze', '--use-kube=false', '-A', '-o', 'json', ...files]);
  const json = res.stdout.slice(res.stdout.indexOf('['), res.stdout.lastIndexOf(']') + 1);
  expect(json, `istioctl analyze printed no JSON:\n${res.stdout}${res.stderr}`).to.not.equal('');
  return { res, messages: JSON.parse(json) as AnalyzerMessage[] };
}

interface KubeconformReport {
  resources?: Array<{ filename: string; kind: string; name: string; status: string; msg: string }>;
  summary: { valid: number; invalid: number; errors: number; skipped: number };
}

async function kubeconformRun(files: string[]): Promise<{ res: Result; report: KubeconformReport }> {
  const args = ['-strict', '-summary', '-output', 'json', ...schemaLocations.flatMap((l) => ['-schema-location', l]), ...files];
  const res = await run(kubeconform, args);
  return { res, report: JSON.parse(res.stdout) as KubeconformReport };
}

function allowed(tool: 'validate' | 'analyze', file: string, message: string): boolean {
  return ALLOWED.some((a) => a.tool === tool && a.file.test(basename(file)) && a.message.test(message));
}

describe('synthesized manifests, checked by istioctl 1.30 and kubeconform -strict', function () {
  this.timeout(300000);
  const tmp = mkdtempSync(join(tmpdir(), 'flatline-manifests-'));
  let files: string[] = [];
  let devFiles: string[] = [];
  const isFault = (f: string) => /^fault-/.test(basename(f));

  before(async function () {
    for (const tool of [istioctl, kubeconform, schemas]) {
      if (!existsSync(tool)) throw new Error(`${tool} is missing: run tools/install.sh (npm test does)`);
    }
    files = manifestsIn(await synth(join(tmp, 'synth'), 'production'));
    devFiles = manifestsIn(await synth(join(tmp, 'synth-dev'), 'dev'));
  });

  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('synth writes manifests, query\'s JWT policy among them', () => {
    expect(files.length, 'no manifest written').to.be.above(0);
    expect(devFiles.map((f) => basename(f))).to.deep.equal(files.map((f) => basename(f)));
    const policy = readFileSync(files.find((f) => basename(f) === 'flatline-4-mesh-policy.k8s.yaml')!, 'utf8');
    expect(policy).to.contain('kind: RequestAuthentication');
    expect(policy).to.contain(`jwksUri: ${JWT.jwksUri}`);
    expect(policy).to.contain(`- ${JWT.issuer}/*`);
  });

  it('istioctl validate accepts every file, warnings only where allow-listed', async () => {
    for (const file of files) {
      const res = await run(istioctl, ['validate', '-f', file]);
      const out = res.stdout + res.stderr;
      expect(res.code, `${basename(file)}:\n${out}`).to.equal(0);
      const unexpected = validateWarnings(out).filter((w) => !allowed('validate', file, w));
      expect(unexpected, `${basename(file)}: unexpected warnings`).to.deep.equal([]);
    }
  });

  it('istioctl analyze finds no error or warning, on the baseline and with each fault applied', async () => {
    const base = files.filter((f) => !isFault(f));
    // A fault file replaces its host's baseline VirtualService (same name), as `kubectl apply` would.
    const sets = [base, ...files.filter(isFault).map((f) => [...base, f])];
    for (const set of sets) {
      const { res, messages } = await analyze(set);
      const findings = messages.filter((m) => m.level !== 'Info' && !allowed('analyze', (m.reference ?? '').replace(/:\d+$/, ''), `${m.code} ${m.origin}: ${m.message}`));
      expect(findings, `analyzing ${set.map((f) => basename(f)).join(', ')}:\n${res.stderr}`).to.deep.equal([]);
      // A file istioctl could not parse is skipped with a stderr line, not a finding: refuse that too.
      expect(res.stderr, 'istioctl analyze could not read a file').to.not.match(/could not be parsed|error processing/i);
    }
  });

  it('the dev profile (what Tilt applies, query\'s JWT keys inline) passes istioctl validate, analyze and kubeconform too', async () => {
    for (const file of devFiles) {
      const res = await run(istioctl, ['validate', '-f', file]);
      expect(res.code, `${basename(file)}:\n${res.stdout}${res.stderr}`).to.equal(0);
      expect(validateWarnings(res.stdout + res.stderr), basename(file)).to.deep.equal([]);
    }
    const { res, messages } = await analyze(devFiles.filter((f) => !isFault(f)));
    expect(messages.filter((m) => m.level !== 'Info'), res.stderr).to.deep.equal([]);
    const k = await kubeconformRun(devFiles);
    expect(k.report.summary.invalid + k.report.summary.errors + k.report.summary.skipped, k.res.stdout).to.equal(0);
  });

  it('every pod selector a cluster chaos experiment writes selects pods the manifests label so (a selector of no pod cuts nothing)', () => {
    const manifests = files.map((f) => readFileSync(f, 'utf8')).join('\n');
    const selectors: Array<[string, string, string]> = [];
    const collect = (file: string, node: unknown): void => {
      if (Array.isArray(node)) return node.forEach((n) => collect(file, n));
      if (typeof node !== 'object' || node === null) return;
      for (const [k, v] of Object.entries(node)) {
        if (k === 'matchLabels' && typeof v === 'object' && v !== null) for (const [label, value] of Object.entries(v)) selectors.push([file, label, String(value)]);
        else collect(file, v);
      }
    };
    for (const d of readdirSync(join(REPO_ROOT, 'chaos'))) {
      const f = join(REPO_ROOT, 'chaos', d, 'experiment.cluster.json');
      if (existsSync(f)) collect(d, JSON.parse(readFileSync(f, 'utf8')));
    }
    expect(selectors.length, 'the H3 cluster experiment selects MongoDB\'s pods').to.be.above(0);
    for (const [experiment, label, value] of selectors) expect(manifests, `${experiment}: ${label}=${value}`).to.match(new RegExp(`^\\s+${label.replace(/[./]/g, '\\$&')}: ${value}$`, 'm'));
  });

  it('kubeconform -strict validates every object against its schema', async () => {
    const { res, report } = await kubeconformRun(files);
    const bad = (report.resources ?? []).map((r) => `${basename(r.filename)} ${r.kind}/${r.name}: ${r.status} ${r.msg}`);
    expect(bad, res.stderr).to.deep.equal([]);
    expect(report.summary.invalid + report.summary.errors + report.summary.skipped).to.equal(0);
    expect(report.summary.valid, 'fewer objects than files').to.be.at.least(files.length);
    expect(res.code).to.equal(0);
  });

  describe('negative controls: the validators say no', () => {
    const dir = join(tmp, 'negative');
    const write = (name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };
    const virtualService = (o: { percent?: number; delayField?: string; gateway?: string } = {}) => `apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: devices
  namespace: flatline
spec:
  hosts: [devices.flatline.svc.cluster.local]${o.gateway ? `\n  gateways: [${o.gateway}]` : ''}
  http:
    - name: fault-devices-slow
      match: [{uri: {prefix: /flat/7/}}]
      fault:
        delay:
          ${o.delayField ?? 'fixedDelay'}: 30s
          percentage: {value: ${o.percent ?? 100}}
      route: [{destination: {host: devices.flatline.svc.cluster.local}}]
    - name: baseline
      route: [{destination: {host: devices.flatline.svc.cluster.local}}]
`;
    const deployment = (replicas: string) => `apiVersion: apps/v1
kind: Deployment
metadata: {name: query, namespace: flatline, labels: {app: query, version: v1}}
spec:
  replicas: ${replicas}
  selector: {matchLabels: {app: query}}
  template:
    metadata: {labels: {app: query, version: v1}}
    spec:
      containers: [{name: query, image: flatline, ports: [{name: grpc, containerPort: 7102}]}]
`;

    before(() => mkdirSync(dir, { recursive: true }));

    it('istioctl validate refuses a fault percentage of 150, and accepts the same object at 100', async () => {
      const good = await run(istioctl, ['validate', '-f', write('vs-100.yaml', virtualService())]);
      expect(good.code, good.stdout + good.stderr).to.equal(0);
      const bad = await run(istioctl, ['validate', '-f', write('vs-150.yaml', virtualService({ percent: 150 }))]);
      expect(bad.code).to.not.equal(0);
      expect(bad.stdout + bad.stderr).to.contain('percentage 150');
    });

    it('istioctl validate refuses a RequestAuthentication whose inline JWKS is no key set, or whose JWKS URI is no URL', async () => {
      const ra = (rule: string) => `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: query, namespace: flatline}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: query}}
  jwtRules:
    - issuer: ${JWT.issuer}
      ${rule}
`;
      const good = await run(istioctl, ['validate', '-f', write('ra-good.yaml', ra(`jwksUri: ${JWT.jwksUri}`))]);
      expect(good.code, good.stdout + good.stderr).to.equal(0);
      const badJwks = await run(istioctl, ['validate', '-f', write('ra-jwks.yaml', ra('jwks: "{not a key set"'))]);
      expect(badJwks.code).to.not.equal(0);
      expect(badJwks.stdout + badJwks.stderr).to.contain('jwks parse error');
      const badUri = await run(istioctl, ['validate', '-f', write('ra-uri.yaml', ra('jwksUri: "login.example.org/certs"'))]);
      expect(badUri.code).to.not.equal(0);
      expect(badUri.stdout + badUri.stderr).to.contain('URI scheme "" is not supported');
    });

    it('istioctl analyze reports a VirtualService bound to a gateway that does not exist', async () => {
      const good = await analyze([write('vs-nogw.yaml', virtualService())]);
      expect(good.messages.filter((m) => m.level !== 'Info')).to.deep.equal([]);
      const bad = await analyze([write('vs-gw.yaml', virtualService({ gateway: 'no-such-gateway' }))]);
      expect(bad.messages.map((m) => `${m.level} ${m.code} ${m.message}`)).to.include('Error IST0101 Referenced gateway not found: "no-such-gateway"');
    });

    it('kubeconform -strict refuses a misspelled field and replicas: "two", and accepts the corrected objects', async () => {
      const good = await kubeconformRun([write('good.yaml', `${virtualService()}---\n${deployment('2')}`)]);
      expect(good.report.summary).to.deep.equal({ valid: 2, invalid: 0, errors: 0, skipped: 0 });
      expect(good.res.code).to.equal(0);

      const bad = await kubeconformRun([write('typo.yaml', virtualService({ delayField: 'fixedDelai' })), write('replicas.yaml', deployment('"two"'))]);
      expect(bad.res.code).to.not.equal(0);
      expect(bad.report.summary.invalid).to.equal(2);
      const msgs = (bad.report.resources ?? []).map((r) => `${r.kind}: ${r.msg}`).join('\n');
      expect(msgs).to.match(/VirtualService: .*additional properties 'fixedDelai' not allowed/);
      expect(msgs).to.match(/Deployment: .*at '\/spec\/replicas': got string, want null or integer/);
    });
  });
});
