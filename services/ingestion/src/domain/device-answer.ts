/**
 * The device gateway's answer to `GET /flat/<ID>/measurements/`, checked
 * before anything of it is kept: a third party's malformed answer must never
 * reach the outbox or stop the poller.
 */
import { z } from 'zod';

const DEVICE_ID = /^[A-Za-z0-9_.-]{1,64}$/;
/** The pattern z.iso.datetime({ offset: true }) checks with (zod's own). */
const TAKEN_AT = z.regexes.datetime({ offset: true });
const MAX_DEVICES = 1000;
const MAX_READINGS = 100000;

const reading = z.object({
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  taken_at: z.iso.datetime({ offset: true }),
  value: z.number().refine(Number.isFinite, 'must be a finite number'),
});

const device = z.object({
  device_id: z.string().regex(DEVICE_ID),
  quantity: z.string().min(1).max(64),
  unit: z.string().min(1).max(32),
  readings: z.array(reading).max(MAX_READINGS),
});

const answer = z.object({
  flat_id: z.string(),
  devices: z.array(device).max(MAX_DEVICES),
});

/** One reading of a device, as the outbox keeps it. */
export interface DeviceReading {
  readonly deviceId: string;
  readonly seq: number;
  readonly takenAtMs: number;
  readonly quantity: string;
  readonly unit: string;
  readonly value: number;
}

/** A device answer that failed validation; reason says where, never with any credential. */
export class MalformedAnswerError extends Error {
  override name = 'MalformedAnswerError';
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The readings of an answer that passes every check of the schema above,
 * checked in place; undefined for anything else, and the schema then says
 * what is wrong. Why not the schema alone: it copies the whole answer (36
 * readings a poll at the simulator's 60 s window, of which 3 are new), and
 * at 10,000 flats it and that garbage were ~10 % of ingestion's CPU
 * (profile). A test holds the two to the same verdict on a corpus of broken
 * answers, so this never takes what the schema refuses.
 */
export function readingsIfValid(json: unknown): { flatId: string; readings: DeviceReading[] } | undefined {
  if (!isRecord(json)) return undefined;
  const { flat_id: flatId, devices } = json;
  if (typeof flatId !== 'string' || !Array.isArray(devices) || devices.length > MAX_DEVICES) return undefined;
  const readings: DeviceReading[] = [];
  for (const d of devices as unknown[]) {
    if (!isRecord(d)) return undefined;
    const { device_id: deviceId, quantity, unit, readings: rs } = d;
    if (typeof deviceId !== 'string' || !DEVICE_ID.test(deviceId)) return undefined;
    if (typeof quantity !== 'string' || quantity.length < 1 || quantity.length > 64) return undefined;
    if (typeof unit !== 'string' || unit.length < 1 || unit.length > 32) return undefined;
    if (!Array.isArray(rs) || rs.length > MAX_READINGS) return undefined;
    for (const r of rs as unknown[]) {
      if (!isRecord(r)) return undefined;
      const { seq, taken_at: takenAt, value } = r;
      if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) return undefined;
      if (typeof takenAt !== 'string' || !TAKEN_AT.test(takenAt)) return undefined;
      if (typeof value !== 'number' || !Number.isFinite(value)) return undefined;
      readings.push({ deviceId, seq, takenAtMs: Date.parse(takenAt), quantity, unit, value });
    }
  }
  return { flatId, readings };
}

/** Parses and checks the body of a device answer for flatId; throws MalformedAnswerError. */
export function parseDeviceAnswer(body: string, flatId: string): DeviceReading[] {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new MalformedAnswerError(`not JSON (${body.length} bytes)`);
  }
  const verdict = readingsIfValid(json) ?? schemaVerdict(json);
  if ('problem' in verdict) throw new MalformedAnswerError(verdict.problem);
  if (verdict.flatId !== flatId) throw new MalformedAnswerError(`flat_id is ${JSON.stringify(verdict.flatId.slice(0, 64))}, asked for ${flatId}`);
  return verdict.readings;
}

/** The schema's verdict on a parsed answer: its readings, or what is wrong (the first issue, with its path). */
export function schemaVerdict(json: unknown): { flatId: string; readings: DeviceReading[] } | { problem: string } {
  const parsed = answer.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { problem: `${issue?.path.join('.') || 'answer'}: ${issue?.message ?? 'invalid'}` };
  }
  return {
    flatId: parsed.data.flat_id,
    readings: parsed.data.devices.flatMap((d) =>
      d.readings.map((r) => ({ deviceId: d.device_id, seq: r.seq, takenAtMs: Date.parse(r.taken_at), quantity: d.quantity, unit: d.unit, value: r.value })),
    ),
  };
}
