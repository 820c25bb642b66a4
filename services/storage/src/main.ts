/** Storage service: composition root (config → dependencies → server → signals). */
import { StorageServiceService } from '@flatline/proto';
import { GrpcHost, onShutdownSignal, runMain, announceListening, createLogger, createMetrics, serveMetrics, createMongoClient, followDatabase, withPort, helpRequested, printHelp } from '@flatline/platform';
import { loadConfig, STORAGE_ENV } from './config.ts';
import { ReadingStore } from './mongo/reading-store.ts';
import { startStatePruning } from './mongo/prune-schedule.ts';
import { StatePruner } from './mongo/state-pruner.ts';
import { storageService } from './storage-service.ts';

const NAME = 'flatline-storage';

runMain(NAME, async () => {
  if (helpRequested()) return printHelp(NAME, 'Stores the readings ingestion fetched in MongoDB (gRPC StorageService.Append).', STORAGE_ENV);
  const config = loadConfig();
  const logger = createLogger(NAME, config.logLevel);
  const metrics = createMetrics('storage');
  const client = createMongoClient(config.mongoUri, config.dbTimeoutMs);
  const store = new ReadingStore(client.db(), config.dbTimeoutMs);
  const pruning = startStatePruning(new StatePruner(client.db(), { deviceTtlMs: config.stateDeviceTtlMs, timeoutMs: config.dbTimeoutMs }), {
    everyMs: config.statePruneMs,
    logger: logger.child({ component: 'state-pruner' }),
    registry: metrics.registry,
  });
  const host = new GrpcHost({ logger, metrics, reflect: ['flatline.storage.v1.StorageService'] });

  const database = followDatabase(host, client.db(), { intervalMs: config.dbPingMs, timeoutMs: config.dbTimeoutMs, logger, uri: config.mongoUri }, {
    what: 'indexes',
    run: () => store.ensureIndexes(config.dbTimeoutMs),
  });
  host.addService(
    StorageServiceService,
    storageService({
      host,
      store,
      dbTimeoutMs: config.dbTimeoutMs,
      maxClockSkewMs: config.maxClockSkewMs,
      registry: metrics.registry,
      logger: logger.child({ component: 'append' }),
      isDatabaseUp: database.isUp,
      onUnavailable: database.markDown,
    }),
    'flatline.storage.v1.StorageService',
  );
  const port = await host.listen(config.listen);
  const metricsServer = await serveMetrics(config.metricsListen, metrics.registry, logger);
  announceListening(logger, { grpc: withPort(config.listen, port), metrics: withPort(config.metricsListen, metricsServer.port) });

  onShutdownSignal(logger, async () => {
    await host.shutdown(config.shutdownGraceMs);
    database.stop();
    pruning.unsubscribe();
    await metricsServer.close();
    await client.close();
  });
});
