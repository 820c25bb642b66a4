/** Storage service's process: help, configuration, start, signals. */
import { onShutdownSignal, runMain, createLogger, helpRequested, printHelp } from '@flatline/platform';
import { loadConfig, STORAGE_ENV } from './config.ts';
import { startStorage } from './server.ts';

const NAME = 'flatline-storage';

runMain(NAME, async () => {
  if (helpRequested()) return printHelp(NAME, 'Stores the readings ingestion fetched in MongoDB (gRPC StorageService.Append).', STORAGE_ENV);
  const config = loadConfig();
  const logger = createLogger(NAME, config.logLevel);
  const server = await startStorage(config, logger);
  onShutdownSignal(logger, server.stop);
});
