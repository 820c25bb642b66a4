/** Every benchmark suite, in the order `flatline bench` runs them. */
import { resilienceSuite } from './resilience.ts';
import type { BenchSuite } from './suite.ts';

/** The suites. */
export const SUITES: readonly BenchSuite[] = [resilienceSuite];
