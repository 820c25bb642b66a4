/** The cdk8s app as a library (the charts of the whole system); `npm run synth` runs main.ts. */
export { buildApp, systemCharts, SYSTEM_CHARTS } from './app.ts';
export * from './settings.ts';
