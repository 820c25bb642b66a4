/** The answer of GET /flat/<ID>/measurements/: every reading of the flat's devices within the window. */
import { identityHash, meterValue, type DeviceSpec } from './meters.ts';
import { forEachReading, type Timeline } from './timeline.ts';

/** One reading as it goes on the wire. */
export interface ReadingJson {
  readonly seq: number;
  readonly taken_at: string;
  readonly value: number;
}

/** One device with its readings, oldest first. */
export interface DeviceJson {
  readonly device_id: string;
  readonly quantity: string;
  readonly unit: string;
  readonly readings: ReadingJson[];
}

/** The whole answer. */
export interface MeasurementsJson {
  readonly flat_id: string;
  readonly generated_at: string;
  readonly devices: DeviceJson[];
}

/** What the answer is computed from. */
export interface MeasurementsInput {
  readonly timeline: Timeline;
  readonly devices: readonly DeviceSpec[];
  readonly windowMs: number;
}

/**
 * A formatter equal to Date#toISOString that formats each minute once:
 * readings come a period apart, and toISOString was half the cost of an
 * answer.
 */
export function isoFormatter(): (ms: number) => string {
  let minute = NaN;
  let prefix = '';
  return (ms) => {
    const m = Math.floor(ms / 60_000);
    if (m !== minute) {
      minute = m;
      prefix = new Date(m * 60_000).toISOString().slice(0, 17); // "YYYY-MM-DDTHH:MM:"
    }
    const rest = ms - m * 60_000;
    const s = Math.floor(rest / 1000);
    const milli = rest - s * 1000;
    return `${prefix}${s < 10 ? '0' : ''}${s}.${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
  };
}

/** The readings of flatId's devices taken in (now − window, now]. */
export function measurementsOf(flatId: string, input: MeasurementsInput, nowMs: number): MeasurementsJson {
  const epochMs = input.timeline[0]!.startMs;
  const iso = isoFormatter();
  return {
    flat_id: flatId,
    generated_at: new Date(nowMs).toISOString(),
    devices: input.devices.map((device) => {
      const seed = identityHash(flatId, device.id);
      const readings: ReadingJson[] = [];
      forEachReading(input.timeline, seed, nowMs - input.windowMs, nowMs, (seq, takenAtMs) => {
        readings.push({ seq, taken_at: iso(takenAtMs), value: meterValue(device.kind, seed, seq, takenAtMs, epochMs) });
      });
      return { device_id: device.id, quantity: device.quantity, unit: device.unit, readings };
    }),
  };
}

/** The same answer with the types a sloppy firmware sends: seq and value as strings. */
export function withWrongTypes(doc: MeasurementsJson): unknown {
  return {
    ...doc,
    devices: doc.devices.map((d) => ({ ...d, readings: d.readings.map((r) => ({ seq: String(r.seq), taken_at: r.taken_at, value: String(r.value) })) })),
  };
}
