/** Checks on a running stack: gaps in stored sequences, metric values, freshness. */
import { MongoClient } from 'mongodb';
import type { FreshnessReport } from '@flatline/proto/flatline/query/v1/query.js';
import { freshnessReport } from '@flatline/cli/stack/probes.js';

/** Per device, the seqs missing between its lowest and highest stored seq. */
export interface GapReport {
  readonly devices: number;
  readonly readings: number;
  readonly gaps: Array<{ flat: string; device: string; missing: number }>;
}

/** Reads every stored reading's (flat, device, seq) and finds the holes in each device's range. */
export async function seqGaps(uri: string): Promise<GapReport> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 5000 });
  try {
    const docs = await client.db().collection('readings').find({}, { projection: { _id: 0, flat_id: 1, device_id: 1, seq: 1 } }).toArray();
    const byDevice = new Map<string, number[]>();
    for (const d of docs) {
      const key = `${d['flat_id']}/${d['device_id']}`;
      const list = byDevice.get(key) ?? [];
      list.push(d['seq'] as number);
      byDevice.set(key, list);
    }
    const gaps: GapReport['gaps'] = [];
    for (const [key, seqs] of byDevice) {
      const distinct = new Set(seqs);
      const missing = Math.max(...distinct) - Math.min(...distinct) + 1 - distinct.size;
      const [flat, device] = key.split('/') as [string, string];
      if (missing > 0) gaps.push({ flat, device, missing });
    }
    return { devices: byDevice.size, readings: docs.length, gaps };
  } finally {
    await client.close();
  }
}

export { metricValue as metric, freshnessReport } from '@flatline/cli/stack/probes.js';

/** The freshness report over every flat (at most 1000 listed), or as selected. */
export function freshness(queryAddress: string, request: { flatIds?: string[]; excludeFlatIds?: string[] } = {}): Promise<FreshnessReport> {
  return freshnessReport(queryAddress, { ...request, limit: 1000 });
}
