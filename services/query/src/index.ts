/** What other workspaces use of query: its configuration, request bounds and start function (main.ts runs it as a process, tests in-process). */
export { loadConfig, QUERY_ENV } from './config.ts';
export { freshnessReport, type LastFetch } from './domain/freshness.ts';
export { MAX_FLATS_PER_REQUEST } from './domain/query-args.ts';
export { startQuery, type QueryConfig } from './server.ts';
