/** What other workspaces use of ingestion (its configuration, its outbox files for flatline deadletters); the service runs from main.ts. */
export { loadConfig, INGESTION_ENV } from './config.ts';
export { Outbox, type DeadLetter, type OutboxFetch, type OutboxReading } from './outbox/outbox.ts';
export { heldReadings, lastFetches, type HeldReading } from './outbox/held.ts';
