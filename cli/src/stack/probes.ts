/** Small reads of a running stack shared by commands: a metric's value, the freshness report. */
import { credentials } from '@grpc/grpc-js';
import { MongoClient } from 'mongodb';
import { QueryServiceClient, type FreshnessReport } from '@flatline/proto/flatline/query/v1/query.js';
import { unaryCall } from '@flatline/platform/grpc-client.js';

/** The Prometheus text of a /metrics address. */
export async function scrapeText(address: string): Promise<string> {
  const res = await fetch(`http://${address}/metrics`, { signal: AbortSignal.timeout(3000) });
  return res.text();
}

/** Sum of a metric's series in Prometheus text, only those whose labels contain labelText if given. */
export function sumMetric(text: string, name: string, labelText = ''): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!(line.startsWith(`${name} `) || line.startsWith(`${name}{`))) continue;
    if (labelText !== '' && !line.includes(labelText)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** Sum of a metric's series at a /metrics address, only those whose labels contain labelText if given. */
export async function metricValue(address: string, name: string, labelText = ''): Promise<number> {
  return sumMetric(await scrapeText(address), name, labelText);
}

/** The query service's freshness report (every flat, or as selected). */
export async function freshnessReport(
  queryAddress: string,
  request: { flatIds?: string[]; excludeFlatIds?: string[]; limit?: number } = {},
  timeoutMs = 5000,
): Promise<FreshnessReport> {
  const client = new QueryServiceClient(queryAddress, credentials.createInsecure());
  try {
    const res = await unaryCall(client, client.getFreshness, { flatIds: request.flatIds ?? [], excludeFlatIds: request.excludeFlatIds ?? [], limit: request.limit ?? 10 }, timeoutMs);
    return res.report!;
  } finally {
    client.close();
  }
}

/** Per device, the seqs missing between its lowest and highest stored seq. */
export interface GapReport {
  readonly devices: number;
  readonly readings: number;
  readonly gaps: Array<{ flat: string; device: string; missing: number }>;
}

/**
 * Reads every stored reading's (flat, device, seq) — or only those taken at
 * or after since — and finds the holes in each device's range.
 */
export async function seqGaps(uri: string, since?: Date): Promise<GapReport> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 5000 });
  try {
    const filter = since === undefined ? {} : { taken_at: { $gte: since } };
    const docs = await client.db().collection('readings').find(filter, { projection: { _id: 0, flat_id: 1, device_id: 1, seq: 1 } }).toArray();
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
