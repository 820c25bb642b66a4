/** Every benchmark suite, in the order `flatline bench` runs them. */
import { httpFloorSuite } from './http-floor.ts';
import { pollingSuite } from './polling.ts';
import { querySuite } from './query.ts';
import { rangeReadsSuite } from './range-reads.ts';
import { resilienceSuite } from './resilience.ts';
import { scaleSuite } from './scale.ts';
import { storageSuite } from './storage.ts';
import type { BenchSuite } from './suite.ts';

/** The suites: the HTTP floor first (it shows the simulator is not what limits polling). */
export const SUITES: readonly BenchSuite[] = [httpFloorSuite, pollingSuite, storageSuite, querySuite, rangeReadsSuite, resilienceSuite, scaleSuite];
