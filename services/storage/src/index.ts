/** What other workspaces use of storage: its configuration, request validation and start function (main.ts runs it as a process, tests in-process). */
export { loadConfig, STORAGE_ENV } from './config.ts';
export { toAppendBatch } from './domain/append-batch.ts';
export { startStorage, type StorageConfig } from './server.ts';
