/** Identifier rules of the wire contracts (see proto/flatline/reading/v1/reading.proto). */
import { InvalidArgumentError } from './status.ts';

const FLAT_ID = /^[A-Za-z0-9_-]{1,64}$/;
const DEVICE_ID = /^[A-Za-z0-9_.-]{1,64}$/;

/** Throws INVALID_ARGUMENT unless id is a well-formed flat id; field names it in the message. */
export function checkFlatId(id: string, field = 'flat_id'): string {
  if (id === '') throw new InvalidArgumentError(`${field} is required`);
  if (!FLAT_ID.test(id)) {
    throw new InvalidArgumentError(`${field} must be 1 to 64 characters of [A-Za-z0-9_-], got ${JSON.stringify(id.slice(0, 80))}`);
  }
  return id;
}

/** Throws INVALID_ARGUMENT unless id is a well-formed device id. */
export function checkDeviceId(id: string, field = 'device_id'): string {
  if (id === '') throw new InvalidArgumentError(`${field} is required`);
  if (!DEVICE_ID.test(id)) {
    throw new InvalidArgumentError(`${field} must be 1 to 64 characters of [A-Za-z0-9_.-], got ${JSON.stringify(id.slice(0, 80))}`);
  }
  return id;
}
