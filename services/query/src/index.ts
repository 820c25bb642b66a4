/** What other workspaces use of query (its configuration and request bounds); the service runs from main.ts. */
export { loadConfig, QUERY_ENV } from './config.ts';
export { MAX_FLATS_PER_REQUEST } from './domain/query-args.ts';
