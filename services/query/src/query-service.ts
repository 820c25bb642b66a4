/** The gRPC adapter of QueryService. */
import { defer, exhaustMap, map, timer } from 'rxjs';
import type {
  GetFreshnessRequest,
  GetFreshnessResponse,
  GetLatestRequest,
  GetLatestResponse,
  ListMeasurementsRequest,
  ListMeasurementsResponse,
  QueryServiceServer,
  WatchFreshnessRequest,
  WatchFreshnessResponse,
} from '@flatline/proto';
import { type GrpcHost, budgetMs, checkFlatId, NotFoundError, UnavailableError } from '@flatline/platform';
import { freshnessReport, type FreshnessSelector } from './domain/freshness.ts';
import type { PageTokens } from './domain/page-token.ts';
import { toFreshnessSelector, toRangeQuery, toWatch } from './domain/query-args.ts';
import type { QueryStore } from './mongo/query-store.ts';

/** Dependencies of the query service. */
export interface QueryServiceDeps {
  readonly host: GrpcHost;
  readonly store: QueryStore;
  /** Bound on every database call, shortened to the caller's deadline. */
  readonly dbTimeoutMs: number;
  /** Whether the last health ping reached the database. */
  readonly isDatabaseUp: () => boolean;
  /** Signs and checks ListMeasurements page tokens with the deployment's key. */
  readonly pageTokens: PageTokens;
  readonly now?: () => Date;
}

/** Builds the QueryService implementation. */
export function queryService(deps: QueryServiceDeps): QueryServiceServer {
  const now = deps.now ?? (() => new Date());
  const ready = (): void => {
    if (!deps.isDatabaseUp()) throw new UnavailableError('database unavailable: query is waiting for it to come back; retry later');
  };
  const report = async (selector: FreshnessSelector, timeoutMs: number) =>
    freshnessReport(await deps.store.lastFetches(selector.flatIds, timeoutMs), selector, now());

  return {
    getLatest: deps.host.unary<GetLatestRequest, GetLatestResponse>('GetLatest', async (req, ctx) => {
      const flatId = checkFlatId(req.flatId);
      ready();
      const latest = await deps.store.latest(flatId, budgetMs(ctx.deadline, deps.dbTimeoutMs));
      // Storage records a fetch for every flat it stores, even one with no readings: no fetch means no such flat (yet).
      if (latest.lastFetchAt === undefined && latest.readings.length === 0) {
        throw new NotFoundError(`flat "${flatId}" is unknown: it was never fetched successfully (or its first fetch is not visible yet)`);
      }
      return { flatId, readings: latest.readings, lastFetchAt: latest.lastFetchAt };
    }),

    listMeasurements: deps.host.unary<ListMeasurementsRequest, ListMeasurementsResponse>('ListMeasurements', async (req, ctx) => {
      const query = toRangeQuery(req, deps.pageTokens);
      ready();
      const page = await deps.store.range(query, budgetMs(ctx.deadline, deps.dbTimeoutMs));
      return {
        readings: page.readings,
        nextPageToken: page.more && page.last !== undefined ? deps.pageTokens.encode(page.last, query.key) : '',
      };
    }),

    getFreshness: deps.host.unary<GetFreshnessRequest, GetFreshnessResponse>('GetFreshness', async (req, ctx) => {
      const selector = toFreshnessSelector(req);
      ready();
      return { report: await report(selector, budgetMs(ctx.deadline, deps.dbTimeoutMs)) };
    }),

    watchFreshness: deps.host.serverStream<WatchFreshnessRequest, WatchFreshnessResponse>('WatchFreshness', (req) => {
      return defer(() => {
        const { selector, intervalMs } = toWatch(req);
        return timer(0, intervalMs).pipe(
          exhaustMap(() =>
            defer(async () => {
              ready();
              return report(selector, deps.dbTimeoutMs);
            }),
          ),
          map((r) => ({ report: r })),
        );
      });
    }),
  };
}
