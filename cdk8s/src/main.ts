/** `npm run synth`: writes flatline's manifests (cdk8s/dist/ by default) and says what it wrote. */
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp } from './app.ts';
import { loadSynthOptions } from './config.ts';
import { devToken } from './secrets.ts';
import { DEV_SEED, DEV_SETTINGS, imageOf, MIN_PRODUCTION_SEED_LENGTH, mongoMembers } from './settings.ts';
import { CLUSTER_LINKS, TOXIPROXY, UNPROXIED_LINKS } from './toxiproxy.ts';

const DEFAULT_OUTDIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const d = DEV_SETTINGS;

function usage(): string {
  const out = relative(process.cwd(), DEFAULT_OUTDIR) || DEFAULT_OUTDIR;
  return `usage: FLATLINE_SECRET_SEED=<seed> npm run synth -- --jwt-issuer <iss> --jwks-uri <url> [options]
       npm run synth -- --profile dev [options]

Synthesizes flatline's Kubernetes and Istio manifests with cdk8s. The output
depends on the options and the seed alone (no clock, no randomness): two runs
write the same bytes. Files (one per chart), in the order to apply them:
  flatline-0-namespace.k8s.yaml   the namespace, with istio-injection enabled
  flatline-1-secrets.k8s.yaml     device credentials, device CA (key: Secret; certificate: ConfigMap),
                                  the simulator's timeline, MongoDB credentials and key file
  flatline-2-mongodb.k8s.yaml     MongoDB replica set (StatefulSet of 3, headless Service, init Job,
                                  PodDisruptionBudget, NetworkPolicy)
  flatline-3-services.k8s.yaml    storage, query (Deployments), ingestion (StatefulSet: its outbox
                                  survives a drained node), devices simulator (Deployment), with
                                  Services, ServiceAccounts, PodDisruptionBudgets, and the
                                  NetworkPolicy that admits only ingestion to the device API
                                  (with --toxiproxy: Toxiproxy too, see below)
  flatline-4-mesh-policy.k8s.yaml PeerAuthentication STRICT, RequestAuthentication (JWT) and
                                  AuthorizationPolicies, DestinationRules (devices: ingestion's
                                  sidecar originates TLS to the simulator)
  flatline-5-gateway.k8s.yaml     Istio Gateway and VirtualService: query's gRPC for grpcurl
  mesh-baseline.k8s.yaml          baseline VirtualServices (no Istio retries: the services retry)
  fault-<scenario>.k8s.yaml       the VirtualService that replaces a host's baseline while the fault is on

Profiles:
  production (default)   every secret is derived from the operator's seed (--seed or
                         FLATLINE_SECRET_SEED, at least ${MIN_PRODUCTION_SEED_LENGTH} characters, e.g. openssl rand -base64 32);
                         keep it outside the repository and reuse it for the same cluster. Callers
                         through the gateway need a JWT of --jwt-issuer. Without them synth exits 2.
  dev                    the fixed, public seed ${JSON.stringify(DEV_SEED)}, a JWT issuer derived from it, every
                         Secret labelled flatline.dev/profile=dev and a warning: a throwaway cluster only

Apply:          for f in ${out}/flatline-*.k8s.yaml; do kubectl apply -f "$f"; done
Apply a fault:  kubectl apply -f ${out}/fault-devices-slow.k8s.yaml
Remove it:      kubectl apply -f ${out}/mesh-baseline.k8s.yaml
Call query:     grpcurl -plaintext -authority ${d.gateway.host} -H "authorization: Bearer $TOKEN" <ingress address>:${d.gateway.port} list
                (dev profile: TOKEN=$(npm run -s synth -- --profile dev --print-dev-token))

Options:
  --profile <name>       production (default) or dev
  --seed <text>          seed every Secret value is derived from (else FLATLINE_SECRET_SEED; the
                         variable keeps it out of the process list and the shell history)
  --jwt-issuer <iss>     issuer of the tokens callers through the gateway present (else FLATLINE_JWT_ISSUER);
                         they are admitted as <iss>/<sub>
  --jwks-uri <url>       https URL of that issuer's public keys, fetched by istiod (else FLATLINE_JWKS_URI)
  --jwt-audience <aud>   an audience a token must carry (repeatable; else FLATLINE_JWT_AUDIENCES, comma-separated)
  --print-dev-token      dev profile: print a token of the dev issuer (valid 24 h) and write nothing
  --outdir <dir>         where to write (default ${out}); its old *.k8s.yaml files are removed first
  --namespace <name>     namespace (default ${d.namespace})
  --registry <host>      image registry (default ${d.image.registry}; '' for none)
  --tag <tag>            image tag (default ${d.image.tag}); the image is <registry>/${d.image.repository}:<tag>,
                         built from the repository's Dockerfile (default ${imageOf(d)})
  --replicas <n>         replicas of each service, at least 2 (default ${d.replicas})
  --flats <n>            flats simulated and polled (default ${d.flats})
  --poll-interval <ms>   milliseconds between two polls of a flat (default ${d.pollIntervalMs})
  --toxiproxy            add Toxiproxy (${TOXIPROXY.image}, one replica) in front of MongoDB and the
                         device simulator, for the TCP faults (flatline fault on <tcp scenario> --kube):
                         a ConfigMap of proxies (${CLUSTER_LINKS.map((l) => l.link).join(', ')}), the
                         Deployment, Service, budget, NetworkPolicy and AuthorizationPolicy; the services'
                         MongoDB URIs name their own proxy (directConnection; ${mongoMembers(d)[0]!.split('.')[0]} becomes the preferred
                         primary), and the Service devices leads to the device proxy (devices-direct to the simulator).
                         ${UNPROXIED_LINKS.map((l) => l.link).join(', ')}: no proxy (mTLS between the two services). The API (port ${TOXIPROXY.apiPort})
                         is in no Service: kubectl -n <namespace> port-forward deploy/${TOXIPROXY.name} ${TOXIPROXY.apiPort}, then
                         flatline fault on db-reset --kube --toxiproxy-api http://127.0.0.1:${TOXIPROXY.apiPort}. Off by default.
                         Turning it on for a running cluster: kubectl -n <namespace> delete job mongo-init first
                         (a Job's template cannot change; the Job is idempotent)
  -h, --help             this text
`;
}

async function main(): Promise<void> {
  const options = loadSynthOptions(process.argv.slice(2));
  if (options.help || options.settings === undefined) {
    process.stdout.write(usage());
    return;
  }
  const settings = options.settings;
  for (const warning of options.warnings) process.stderr.write(`synth: WARNING: ${warning}\n`);
  if (options.printDevToken) {
    process.stdout.write(`${devToken(settings)}\n`);
    return;
  }
  const outdir = resolve(options.outdir ?? DEFAULT_OUTDIR);
  // Built before anything is removed: settings that cannot run leave the old output in place.
  const app = await buildApp(settings, outdir);
  mkdirSync(outdir, { recursive: true });
  // Only our own kind of file: a chart that no longer exists must not linger, and nothing else is touched.
  for (const file of readdirSync(outdir)) if (file.endsWith('.k8s.yaml')) rmSync(join(outdir, file));
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
