/** Checks on a running stack: gaps in stored sequences, metric values, freshness. */
import type { FreshnessReport } from '@flatline/proto';
import { freshnessReport } from './probes.ts';

export { metricValue as metric, freshnessReport, seqGaps } from './probes.ts';

/** The freshness report over every flat (at most 1000 listed), or as selected. */
export function freshness(queryAddress: string, request: { flatIds?: string[]; excludeFlatIds?: string[] } = {}): Promise<FreshnessReport> {
  return freshnessReport(queryAddress, { ...request, limit: 1000 });
}
