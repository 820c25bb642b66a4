/**
 * The MongoDB collections storage writes and query reads. FerretDB v1 has no
 * $max/$last in $group, so the latest reading per device and the last fetch
 * per flat are kept in collections of their own instead of aggregated.
 */

/** Collection names. */
export const COLLECTIONS = {
  readings: 'readings',
  latest: 'latest',
  fetches: 'fetches',
} as const;

/** One stored reading; unique on (flat_id, device_id, seq). */
export interface ReadingDoc {
  flat_id: string;
  device_id: string;
  seq: number;
  taken_at: Date;
  quantity: string;
  unit: string;
  value: number;
  stored_at: Date;
}

/** The latest reading of one device; _id is latestKey(flat, device). */
export interface LatestDoc {
  _id: string;
  flat_id: string;
  device_id: string;
  seq: number;
  taken_at: Date;
  quantity: string;
  unit: string;
  value: number;
}

/** The last successful fetch of one flat; _id is the flat id. */
export interface FetchDoc {
  _id: string;
  last_fetch_at: Date;
}

/** _id of a LatestDoc (':' appears in neither id). */
export function latestKey(flatId: string, deviceId: string): string {
  return `${flatId}:${deviceId}`;
}
