/** Small reads of a running stack shared by commands: a metric's value, the freshness report. */
import { credentials } from '@grpc/grpc-js';
import { MongoClient } from 'mongodb';
import { QueryServiceClient, type FreshnessReport } from '@flatline/proto';
import { unaryCall, COLLECTIONS, FETCH_DOCUMENTS } from '@flatline/platform';

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

/** Per device and epoch, the seqs missing between its lowest and highest stored seq. */
export interface GapReport {
  /** Devices (flat, device) with readings. */
  readonly devices: number;
  readonly readings: number;
  /** epoch: how often the device's seq went backwards before these readings (a reset meter counts from 1 again). */
  readonly gaps: Array<{ flat: string; device: string; epoch: number; missing: number }>;
  /** Seqs missing from storage that an outbox still holds (fetched, on their way): not gaps. */
  readonly held?: number;
}

/** Whether a reading (flat, device, epoch, seq) is waiting in an outbox. */
export type Held = (flat: string, device: string, epoch: number, seq: number) => boolean;

/** Held over a list of readings that outboxes hold. */
export function heldIn(readings: ReadonlyArray<{ flatId: string; deviceId: string; epoch: number; seq: number }>): Held {
  const keys = new Set(readings.map((r) => `${r.flatId}\u0000${r.deviceId}\u0000${r.epoch}\u0000${r.seq}`));
  return (flat, device, epoch, seq) => keys.has(`${flat}\u0000${device}\u0000${epoch}\u0000${seq}`);
}

/** A hole in one device's sequence: the seqs after `after` and before `before` are not stored. */
export interface SeqHole {
  readonly flat: string;
  readonly device: string;
  readonly epoch: number;
  readonly after: number;
  readonly before: number;
}

/**
 * The gaps of a list of holes (in (flat, device, epoch) order): per device
 * and epoch, the seqs missing, unless held says an outbox still holds them
 * (on their way: outboxes send fresh fetches first, so storage has holes while a
 * backlog drains). Shared by seqGaps (through FerretDB) and
 * readingGapsPostgres (PostgreSQL's own query), so both count alike.
 */
export function gapsOfHoles(holes: Iterable<SeqHole>, devices: number, readings: number, held?: Held): GapReport {
  const gaps: GapReport['gaps'] = [];
  let waiting = 0;
  for (const h of holes) {
    const size = h.before - h.after - 1;
    let missing = 0;
    if (held === undefined || size > 1_000_000) missing = size;
    else {
      for (let s = h.after + 1; s < h.before; s++) {
        if (held(h.flat, h.device, h.epoch, s)) waiting += 1;
        else missing += 1;
      }
    }
    if (missing === 0) continue;
    const last = gaps.at(-1);
    if (last !== undefined && last.flat === h.flat && last.device === h.device && last.epoch === h.epoch) last.missing += missing;
    else gaps.push({ flat: h.flat, device: h.device, epoch: h.epoch, missing });
  }
  return { devices, readings, gaps, held: waiting };
}

/**
 * Reads every stored reading's (flat, device, epoch, seq) — or only those
 * taken at or after since — and finds the holes in each device's range,
 * epoch by epoch: a reset meter starts a new sequence, which is no gap. A
 * seq that held says an outbox still holds is on its way, not missing.
 * FerretDB v1 sorts in its own memory (it pushes no sort down): on the
 * PostgreSQL backend readingGapsPostgres asks PostgreSQL instead.
 */
export async function seqGaps(uri: string, since?: Date, held?: Held): Promise<GapReport> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 5000 });
  try {
    // A fetch document (FetchDoc) holds many readings in one string field this walk cannot see into: it would count them as none.
    if ((await client.db().collection<{ _id: string }>(COLLECTIONS.migrations).findOne({ _id: FETCH_DOCUMENTS })) !== null) {
      throw new Error('storage keeps fetch documents in this database (FLATLINE_STORAGE_FETCH_DOCUMENTS=1), which this gap count cannot look into: count them in PostgreSQL (the local stack\'s supervisor does: flatline gaps without --mongodb-uri)');
    }
    const filter = since === undefined ? {} : { taken_at: { $gte: since } };
    // Streamed in the order of the unique index, so one device and epoch at a
    // time: memory stays that of one cursor batch however long the history
    // (it held every reading before, inside the supervisor), and a
    // duplicate, were the index ever to miss one, is adjacent and not counted.
    const cursor = client
      .db()
      .collection('readings')
      .find(filter, { projection: { _id: 0, flat_id: 1, device_id: 1, epoch: 1, seq: 1 } })
      .sort({ flat_id: 1, device_id: 1, epoch: 1, seq: 1 });
    const holes: SeqHole[] = [];
    let devices = 0;
    let readings = 0;
    let run: { flat: string; device: string; epoch: number; last: number } | undefined;
    for await (const d of cursor) {
      readings += 1;
      const flat = d['flat_id'] as string;
      const device = d['device_id'] as string;
      const epoch = (d['epoch'] as number | undefined) ?? 0;
      const seq = d['seq'] as number;
      if (run === undefined || run.flat !== flat || run.device !== device || run.epoch !== epoch) {
        if (run === undefined || run.flat !== flat || run.device !== device) devices += 1;
        run = { flat, device, epoch, last: seq };
      } else if (seq !== run.last) {
        if (seq - run.last > 1) holes.push({ flat, device, epoch, after: run.last, before: seq });
        run.last = seq;
      }
    }
    return gapsOfHoles(holes, devices, readings, held);
  } finally {
    await client.close();
  }
}
