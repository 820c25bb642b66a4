/**
 * The answer of GET /flat/<ID>/metrics: a flat's readings in the Prometheus
 * text exposition format (version 0.0.4), for the benchmark that has
 * Prometheus scrape the same devices flatline polls. A scrape samples the
 * present, so each device shows its latest reading of the window, stamped
 * with the time it was taken; the seq gauge next to it numbers the reading,
 * as in the JSON answer.
 */
import type { MeasurementsInput } from './measurements.ts';
import { identityHash, meterValue, type DeviceSpec } from './meters.ts';
import { forEachReading } from './timeline.ts';

/** The Content-Type of the text exposition format. */
export const EXPOSITION_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** A device's latest reading. */
export interface LatestReading {
  readonly device: DeviceSpec;
  readonly seq: number;
  readonly takenAtMs: number;
  readonly value: number;
}

/** The latest reading of each of flatId's devices taken in (now − window, now]; a device with none is left out. */
export function latestReadings(flatId: string, input: MeasurementsInput, nowMs: number): LatestReading[] {
  const epochMs = input.timeline[0]!.startMs;
  const out: LatestReading[] = [];
  for (const device of input.devices) {
    const seed = identityHash(flatId, device.id);
    let seq = 0;
    let takenAtMs = 0;
    forEachReading(input.timeline, seed, nowMs - input.windowMs, nowMs, (s, t) => {
      seq = s;
      takenAtMs = t;
    });
    // Only the last reading's value is computed: the others are not shown.
    if (seq > 0) out.push({ device, seq, takenAtMs, value: meterValue(device.kind, seed, seq, takenAtMs, epochMs) });
  }
  return out;
}

/** A label value escaped as the text format wants (backslash, double quote, line feed). */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

/** The exposition text of flatId's latest readings. */
export function expositionOf(flatId: string, readings: readonly LatestReading[]): string {
  const flat = escapeLabelValue(flatId);
  const lines = [
    '# HELP flatline_device_reading The latest reading of a device in its unit (label unit), stamped with the time it was taken.',
    '# TYPE flatline_device_reading gauge',
  ];
  for (const r of readings) {
    const labels = `flat="${flat}",device="${escapeLabelValue(r.device.id)}",quantity="${escapeLabelValue(r.device.quantity)}",unit="${escapeLabelValue(r.device.unit)}"`;
    lines.push(`flatline_device_reading{${labels}} ${r.value} ${r.takenAtMs}`);
  }
  lines.push('# HELP flatline_device_reading_seq The sequence number of that reading (every reading of a device is numbered, so loss is countable).', '# TYPE flatline_device_reading_seq gauge');
  for (const r of readings) lines.push(`flatline_device_reading_seq{flat="${flat}",device="${escapeLabelValue(r.device.id)}"} ${r.seq} ${r.takenAtMs}`);
  return `${lines.join('\n')}\n`;
}
