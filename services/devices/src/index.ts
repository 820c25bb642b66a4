/** What other workspaces use of the device simulator (its configuration, its TLS material); the service itself runs from main.ts. */
export { loadConfig, DEVICES_ENV } from './config.ts';
export { ensureTlsMaterial } from './state/tls-files.ts';
