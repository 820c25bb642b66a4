/** What other workspaces use of storage: its configuration, request validation, start function (main.ts runs it as a process, tests in-process), and the flat-state writer, compactor and pruner (query's tests follow what they write). */
export { loadConfig, STORAGE_ENV } from './config.ts';
export { toAppendBatch } from './domain/append-batch.ts';
export { startStorage, type StorageConfig } from './server.ts';
export { StateWriter, type StateUpdate } from './mongo/state-writer.ts';
export { StateCompactor } from './mongo/state-compactor.ts';
export { StatePruner } from './mongo/state-pruner.ts';
