/** `npm run synth`: writes flatline's manifests (cdk8s/dist/ by default) and says what it wrote. */
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildApp } from './app.ts';
import { DEFAULT_SETTINGS, imageOf, withSettings, type Settings } from './settings.ts';

const DEFAULT_OUTDIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const d = DEFAULT_SETTINGS;

function usage(): string {
  const out = relative(process.cwd(), DEFAULT_OUTDIR) || DEFAULT_OUTDIR;
  return `usage: npm run synth -- [options]

Synthesizes flatline's Kubernetes and Istio manifests with cdk8s. The output
depends on the options alone (no clock, no randomness): two runs write the
same bytes. Files (one per chart), in the order to apply them:
  flatline-0-namespace.k8s.yaml   the namespace, with istio-injection enabled
  flatline-1-secrets.k8s.yaml     device credentials, device CA (key: Secret; certificate: ConfigMap),
                                  the simulator's timeline, MongoDB credentials and key file
  flatline-2-mongodb.k8s.yaml     MongoDB replica set (StatefulSet of 3, headless Service, init Job,
                                  PodDisruptionBudget, NetworkPolicy)
  flatline-3-services.k8s.yaml    storage, query (Deployments), ingestion (StatefulSet: its outbox
                                  survives a drained node), devices simulator (Deployment), with
                                  Services, ServiceAccounts, PodDisruptionBudgets, and the
                                  NetworkPolicy that admits only ingestion to the device API
  flatline-4-mesh-policy.k8s.yaml PeerAuthentication STRICT, AuthorizationPolicies, DestinationRules
                                  (devices: ingestion's sidecar originates TLS to the simulator)
  flatline-5-gateway.k8s.yaml     Istio Gateway and VirtualService: query's gRPC for grpcurl
  mesh-baseline.k8s.yaml          baseline VirtualServices (no Istio retries: the services retry)
  fault-<scenario>.k8s.yaml       the VirtualService that replaces a host's baseline while the fault is on

Apply:          for f in ${out}/flatline-*.k8s.yaml; do kubectl apply -f "$f"; done
Apply a fault:  kubectl apply -f ${out}/fault-devices-slow.k8s.yaml
Remove it:      kubectl apply -f ${out}/mesh-baseline.k8s.yaml
Call query:     grpcurl -plaintext -authority ${d.gateway.host} <ingress address>:${d.gateway.port} list

Options:
  --outdir <dir>         where to write (default ${out}); its old *.k8s.yaml files are removed first
  --namespace <name>     namespace (default ${d.namespace})
  --registry <host>      image registry (default ${d.image.registry}; '' for none)
  --tag <tag>            image tag (default ${d.image.tag}); the image is <registry>/${d.image.repository}:<tag>,
                         built from the repository's Dockerfile (default ${imageOf(d)})
  --replicas <n>         replicas of each service, at least 2 (default ${d.replicas})
  --flats <n>            flats simulated and polled (default ${d.flats})
  --poll-interval <ms>   milliseconds between two polls of a flat (default ${d.pollIntervalMs})
  --seed <text>          seed every Secret value is derived from (default ${JSON.stringify(d.seed)}: a
                         development seed; give a real cluster its own)
  -h, --help             this text
`;
}

function integer(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw)) throw new Error(`--${name} must be a whole number, got ${JSON.stringify(raw)}`);
  return Number(raw);
}

function settingsFrom(values: Record<string, string | boolean | undefined>): Settings {
  const str = (k: string): string | undefined => (typeof values[k] === 'string' ? values[k] : undefined);
  const replicas = integer('replicas', str('replicas'));
  const flats = integer('flats', str('flats'));
  const pollIntervalMs = integer('poll-interval', str('poll-interval'));
  return withSettings({
    ...(str('namespace') !== undefined ? { namespace: str('namespace')! } : {}),
    ...(str('registry') !== undefined || str('tag') !== undefined ? { image: { ...d.image, registry: str('registry') ?? d.image.registry, tag: str('tag') ?? d.image.tag } } : {}),
    ...(replicas !== undefined ? { replicas } : {}),
    ...(flats !== undefined ? { flats } : {}),
    // The poll timeout stays at most 60 % of a short interval, as the local stack does.
    ...(pollIntervalMs !== undefined ? { pollIntervalMs, pollTimeoutMs: Math.min(d.pollTimeoutMs, Math.floor(pollIntervalMs * 0.6)) } : {}),
    ...(str('seed') !== undefined ? { seed: str('seed')! } : {}),
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      outdir: { type: 'string' },
      namespace: { type: 'string' },
      registry: { type: 'string' },
      tag: { type: 'string' },
      replicas: { type: 'string' },
      flats: { type: 'string' },
      'poll-interval': { type: 'string' },
      seed: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(usage());
    return;
  }
  const settings = settingsFrom(values);
  const outdir = resolve(values.outdir ?? DEFAULT_OUTDIR);
  mkdirSync(outdir, { recursive: true });
  // Only our own kind of file: a chart that no longer exists must not linger, and nothing else is touched.
  for (const file of readdirSync(outdir)) if (file.endsWith('.k8s.yaml')) rmSync(join(outdir, file));
  const app = await buildApp(settings, outdir);
  app.synth();
  for (const file of readdirSync(outdir).filter((f) => f.endsWith('.k8s.yaml')).sort()) {
    const path = join(outdir, file);
    const shown = relative(process.cwd(), path);
    process.stdout.write(`wrote ${shown.startsWith('..') ? path : shown} (${statSync(path).size} bytes)\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`synth: ${err instanceof Error ? err.message : String(err)}\n(see npm run synth -- --help)\n`);
  process.exitCode = 2;
});
