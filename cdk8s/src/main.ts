/** `npm run synth`: writes flatline's manifests into cdk8s/dist/ and says what it wrote. */
import { readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App } from 'cdk8s';
import { DEFAULT_MESH } from '@flatline/mesh/istio.js';
import { meshCharts } from './charts.ts';

const outdir = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(`usage: npm run synth

Synthesizes flatline's manifests with cdk8s into ${relative(process.cwd(), outdir) || outdir}/:
  mesh-baseline.k8s.yaml     baseline VirtualServices, device egress (ServiceEntry, DestinationRule)
  fault-<scenario>.k8s.yaml  the VirtualService that replaces a host's baseline while the fault is on
Apply a fault:  kubectl apply -f cdk8s/dist/fault-devices-slow.k8s.yaml
Remove it:      kubectl apply -f cdk8s/dist/mesh-baseline.k8s.yaml
`);
  process.exit(0);
}

rmSync(outdir, { recursive: true, force: true });
const app = new App({ outdir });
meshCharts(app, DEFAULT_MESH);
app.synth();
for (const file of readdirSync(outdir).sort()) {
  process.stdout.write(`wrote ${relative(process.cwd(), join(outdir, file))} (${statSync(join(outdir, file)).size} bytes)\n`);
}
