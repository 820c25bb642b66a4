/** Small reads of a running stack shared by commands: a metric's value, the freshness report. */
import { credentials } from '@grpc/grpc-js';
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
export async function freshnessReport(queryAddress: string, request: { flatIds?: string[]; excludeFlatIds?: string[]; limit?: number } = {}): Promise<FreshnessReport> {
  const client = new QueryServiceClient(queryAddress, credentials.createInsecure());
  try {
    const res = await unaryCall(client, client.getFreshness, { flatIds: request.flatIds ?? [], excludeFlatIds: request.excludeFlatIds ?? [], limit: request.limit ?? 10 }, 5000);
    return res.report!;
  } finally {
    client.close();
  }
}
