/**
 * The device gateway's answer to `GET /flat/<ID>/measurements/`, checked
 * before anything of it is kept: a third party's malformed answer must never
 * reach the outbox or stop the poller.
 */
import { z } from 'zod';

const reading = z.object({
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  taken_at: z.iso.datetime({ offset: true }),
  value: z.number().refine(Number.isFinite, 'must be a finite number'),
});

const device = z.object({
  device_id: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/),
  quantity: z.string().min(1).max(64),
  unit: z.string().min(1).max(32),
  readings: z.array(reading).max(100000),
});

const answer = z.object({
  flat_id: z.string(),
  devices: z.array(device).max(1000),
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

/** Parses and checks the body of a device answer for flatId; throws MalformedAnswerError. */
export function parseDeviceAnswer(body: string, flatId: string): DeviceReading[] {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new MalformedAnswerError(`not JSON (${body.length} bytes)`);
  }
  const parsed = answer.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new MalformedAnswerError(`${issue?.path.join('.') || 'answer'}: ${issue?.message ?? 'invalid'}`);
  }
  if (parsed.data.flat_id !== flatId) {
    throw new MalformedAnswerError(`flat_id is ${JSON.stringify(parsed.data.flat_id.slice(0, 64))}, asked for ${flatId}`);
  }
  return parsed.data.devices.flatMap((d) =>
    d.readings.map((r) => ({ deviceId: d.device_id, seq: r.seq, takenAtMs: Date.parse(r.taken_at), quantity: d.quantity, unit: d.unit, value: r.value })),
  );
}
