/**
 * The simulated meters: which devices a flat has and what they read. A value
 * is a pure function of (flat, device, seq) — through the time the reading
 * was taken — so every poll, every restart and every replica sees the same
 * number for the same reading.
 */

/** The kinds of meter, cycled through a flat's devices. */
export type MeterKind = 'heat' | 'power' | 'water';

/** One device of a flat (every flat has the same list). */
export interface DeviceSpec {
  readonly id: string;
  readonly kind: MeterKind;
  readonly quantity: string;
  readonly unit: string;
}

const KINDS: ReadonlyArray<Omit<DeviceSpec, 'id'>> = [
  { kind: 'heat', quantity: 'temperature', unit: 'Cel' },
  { kind: 'power', quantity: 'electricity', unit: 'kWh' },
  { kind: 'water', quantity: 'water', unit: 'm3' },
];

/** The devices of every flat: heat-1, power-1, water-1, heat-2, … */
export function deviceCatalogue(perFlat: number): DeviceSpec[] {
  return Array.from({ length: perFlat }, (_, i) => {
    const kind = KINDS[i % KINDS.length]!;
    return { ...kind, id: `${kind.kind}-${Math.floor(i / KINDS.length) + 1}` };
  });
}

/** 32-bit FNV-1a of a device's identity: the seed of its phase and values. */
export function identityHash(flatId: string, deviceId: string): number {
  const s = `${flatId}/${deviceId}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** A well-mixed 32-bit integer (murmur3's finaliser). */
function mix(x: number): number {
  let h = x >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A number in [0, 1) from seed and a salt. */
function unit(seed: number, salt: number): number {
  return mix(seed ^ mix(salt)) / 2 ** 32;
}

const HOUR_MS = 3_600_000;
const DAY_RAD_PER_HOUR = (2 * Math.PI) / 24;

function round(value: number, decimals: number): number {
  const f = 10 ** decimals;
  return Math.round(value * f) / f;
}

/**
 * Consumption since the epoch of a meter whose rate follows a daily cycle,
 * base × (1 + swing × sin(ωh + ψ)) per hour with swing < 1: the integral
 * grows strictly, so the counter never runs backwards.
 */
function counter(base: number, swing: number, phase: number, hours: number): number {
  return base * (hours - (swing / DAY_RAD_PER_HOUR) * (Math.cos(DAY_RAD_PER_HOUR * hours + phase) - Math.cos(phase)));
}

/**
 * The value of a reading. Temperatures wander around a flat's own set point
 * with a daily cycle and some noise (°C, 2 decimals); electricity (kWh, 4
 * decimals) and water (m³, 5 decimals) are counters that only grow.
 */
export function meterValue(kind: MeterKind, seed: number, seq: number, takenAtMs: number, epochMs: number): number {
  const hours = (takenAtMs - epochMs) / HOUR_MS;
  const phase = unit(seed, 1) * 2 * Math.PI;
  switch (kind) {
    case 'heat': {
      const setPoint = 19 + 4 * unit(seed, 2);
      const noise = (unit(seed, seq + 0x10000) - 0.5) * 0.2;
      return round(setPoint + 1.5 * Math.sin(DAY_RAD_PER_HOUR * hours + phase) + noise, 2);
    }
    case 'power': {
      const start = 1000 + 20_000 * unit(seed, 3);
      const kw = 0.2 + 0.8 * unit(seed, 4);
      return round(start + counter(kw, 0.6, phase, hours), 4);
    }
    case 'water': {
      const start = 50 + 500 * unit(seed, 5);
      const m3PerHour = 0.004 + 0.01 * unit(seed, 6);
      return round(start + counter(m3PerHour, 0.8, phase, hours), 5);
    }
  }
}
