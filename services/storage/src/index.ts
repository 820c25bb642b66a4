/** What other workspaces use of storage (its configuration and request validation); the service runs from main.ts. */
export { loadConfig, STORAGE_ENV } from './config.ts';
export { toAppendBatch } from './domain/append-batch.ts';
