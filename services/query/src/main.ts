/** Query service's process: help, configuration, start, signals. */
import { helpRequested, printHelp, onShutdownSignal, runMain, createLogger } from '@flatline/platform';
import { loadConfig, QUERY_ENV } from './config.ts';
import { startQuery } from './server.ts';

const NAME = 'flatline-query';

runMain(NAME, async () => {
  if (helpRequested()) return printHelp(NAME, 'Answers latest readings, ranges and freshness over gRPC (QueryService, with reflection and health).', QUERY_ENV);
  const config = loadConfig();
  const logger = createLogger(NAME, config.logLevel);
  const server = await startQuery(config, logger);
  onShutdownSignal(logger, server.stop);
});
