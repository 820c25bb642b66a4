/** The benchmark suites: @flatline/bench's one entry point. */
export * from './bench-tools.ts';
export * from './http-floor.ts';
export * from './polling.ts';
export * from './query.ts';
export * from './range-reads.ts';
export * from './resilience.ts';
export * from './scale.ts';
export * from './storage.ts';
export * from './suite.ts';
export * from './suites.ts';
