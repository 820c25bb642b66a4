/**
 * The whole cdk8s app: flatline's system (namespace, secrets, MongoDB, the
 * services, mesh policy, gateway) and the mesh charts (baseline routes, one
 * chart per fault scenario), all from one Settings object. Each chart is one
 * file in the output; the system's files are numbered in the order
 * `kubectl apply` needs them (the namespace first).
 */
import { App } from 'cdk8s';
import { meshCharts } from './charts.ts';
import { GatewayChart, MeshPolicyChart } from './mesh-policy-chart.ts';
import { MongoChart } from './mongo-chart.ts';
import { deviceCa } from './secrets.ts';
import { NamespaceChart, SecretsChart } from './secrets-chart.ts';
import { ServicesChart } from './services-chart.ts';
import { checkSettings, meshOf, type Settings } from './settings.ts';

/** The system charts' ids (= file names without .k8s.yaml), in apply order. */
export const SYSTEM_CHARTS = ['flatline-0-namespace', 'flatline-1-secrets', 'flatline-2-mongodb', 'flatline-3-services', 'flatline-4-mesh-policy', 'flatline-5-gateway'] as const;

/** Adds the system charts to app; throws on settings that cannot run (a production profile with the dev seed, for one). */
export async function systemCharts(app: App, s: Settings): Promise<void> {
  checkSettings(s);
  const ca = await deviceCa(s);
  const [ns, secrets, mongo, services, policy, gateway] = SYSTEM_CHARTS;
  new NamespaceChart(app, ns, s);
  new SecretsChart(app, secrets, s, ca);
  new MongoChart(app, mongo, s);
  new ServicesChart(app, services, s);
  new MeshPolicyChart(app, policy, s);
  new GatewayChart(app, gateway, s);
}

/** The app with every chart, writing into outdir when synthesized. */
export async function buildApp(s: Settings, outdir?: string): Promise<App> {
  const app = new App(outdir === undefined ? {} : { outdir });
  await systemCharts(app, s);
  meshCharts(app, meshOf(s));
  return app;
}
