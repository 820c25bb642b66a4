/** Query service: the composition root (config → dependencies → server), started by main.ts or in-process by a test. */
import { QueryServiceService } from '@flatline/proto';
import { GrpcHost, createMetrics, createMongoClient, followDatabase, serveService, type Logger, type StartedServer } from '@flatline/platform';
import type { loadConfig } from './config.ts';
import { QueryStore } from './mongo/query-store.ts';
import { pageTokens } from './domain/page-token.ts';
import { SlotHorizon } from './mongo/slot-horizon.ts';
import { StateSnapshot } from './mongo/state-snapshot.ts';
import { queryService } from './query-service.ts';

export type QueryConfig = ReturnType<typeof loadConfig>;

/** How often query looks again for the record of when storage began to write slots, until it finds it. */
const SLOT_HORIZON_RETRY_MS = 5000;

/** Starts query's gRPC and metrics servers; resolves once both listen. */
export async function startQuery(config: QueryConfig, logger: Logger): Promise<StartedServer> {
  if (config.pageTokenKeyIsDev) {
    logger.warn('FLATLINE_QUERY_PAGE_TOKEN_KEY is not set: page tokens are signed with the public dev key, so anyone can forge them; set a secret (the same on every replica) outside a local run');
  }
  const metrics = createMetrics('query');
  const client = createMongoClient(config.mongoUri, config.dbTimeoutMs);
  const host = new GrpcHost({
    logger,
    metrics,
    reflect: ['flatline.query.v1.QueryService'],
    maxStreams: config.maxStreams,
    maxStreamsSetting: 'FLATLINE_QUERY_MAX_STREAMS',
  });

  const database = followDatabase(host, client.db(), { intervalMs: config.dbPingMs, timeoutMs: config.dbTimeoutMs, logger, uri: config.mongoUri, client });
  // A copy older than three reloads (and the ping's timeout) is not used: the database is away or slow.
  const snapshot = new StateSnapshot(
    client.db(),
    { refreshMs: config.snapshotMs, maxAgeMs: 3 * config.snapshotMs + config.dbTimeoutMs, timeoutMs: config.dbTimeoutMs },
    logger.child({ component: 'snapshot' }),
  );
  snapshot.start();
  const horizon = config.slotReads ? new SlotHorizon(client.db(), { retryMs: SLOT_HORIZON_RETRY_MS, timeoutMs: config.dbTimeoutMs }, logger.child({ component: 'slot-horizon' })) : undefined;
  horizon?.start();
  host.addService(
    QueryServiceService,
    queryService({
      host,
      store: new QueryStore(client.db(), snapshot, horizon === undefined ? undefined : { horizon }),
      dbTimeoutMs: config.dbTimeoutMs,
      isDatabaseUp: database.isUp,
      pageTokens: pageTokens(config.pageTokenKey),
    }),
    'flatline.query.v1.QueryService',
  );
  return serveService(host, metrics, { ...config, logger }, async () => {
    snapshot.stop();
    horizon?.stop();
    database.stop();
    await client.close();
  });
}
