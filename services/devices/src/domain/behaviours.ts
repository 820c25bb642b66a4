/**
 * Behaviour overrides: flats whose devices answer like a broken third party.
 * These are faults of the device itself (its HTTP answer), distinct from the
 * mesh faults injected between services. The table is the only per-flat
 * state the simulator keeps.
 */

/** How a flat's devices answer once the caller has authenticated. */
export const MODES = ['ok', 'http-500', 'http-503', 'malformed-json', 'wrong-types', 'truncated-body', 'slow-body'] as const;

/** One of MODES. */
export type Mode = (typeof MODES)[number];

/** The body of slow-body arrives after this long unless delay_ms says otherwise. */
export const DEFAULT_SLOW_DELAY_MS = 30_000;
/** The longest delay_ms accepted. */
export const MAX_DELAY_MS = 600_000;
/** The most flats one bulk PUT may name. */
export const MAX_BULK_FLATS = 100_000;

/** A flat's behaviour; delayMs only for slow-body. */
export interface Behaviour {
  readonly mode: Mode;
  readonly delayMs?: number;
}

/** Input the control API rejects; the message names the field. */
export class BadInputError extends Error {
  override name = 'BadInputError';
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads {"mode", "delay_ms"?} (plus any fields in extra) from body; throws BadInputError naming the bad field. delay_ms is kept for slow-body only. */
export function parseBehaviour(body: unknown, extra: readonly string[] = []): Behaviour {
  if (!isRecord(body)) throw new BadInputError('body must be a JSON object such as {"mode":"http-503"}');
  const unknown = Object.keys(body).find((k) => k !== 'mode' && k !== 'delay_ms' && !extra.includes(k));
  if (unknown !== undefined) throw new BadInputError(`${unknown}: unknown field (expected mode, delay_ms${extra.map((e) => `, ${e}`).join('')})`);
  const mode = body['mode'];
  if (typeof mode !== 'string' || !(MODES as readonly string[]).includes(mode)) {
    throw new BadInputError(`mode must be one of ${MODES.join(', ')}, got ${JSON.stringify(mode ?? null)}`);
  }
  const delay = body['delay_ms'];
  if (delay !== undefined && (typeof delay !== 'number' || !Number.isInteger(delay) || delay < 0 || delay > MAX_DELAY_MS)) {
    throw new BadInputError(`delay_ms must be an integer from 0 to ${MAX_DELAY_MS}, got ${JSON.stringify(delay)}`);
  }
  // Any mode may carry delay_ms, so an experiment can send one body shape for
  // every mode; only slow-body has a use for it.
  if (mode !== 'slow-body') return { mode: mode as Mode };
  return { mode, delayMs: delay ?? DEFAULT_SLOW_DELAY_MS };
}

/** Reads {"flats": [...], "mode", "delay_ms"?}; every flat must pass isKnown. */
export function parseBulkBehaviour(body: unknown, isKnown: (flatId: string) => boolean): { flats: string[]; behaviour: Behaviour } {
  const behaviour = parseBehaviour(body, ['flats']);
  const flats = (body as Record<string, unknown>)['flats'];
  if (!Array.isArray(flats) || flats.length === 0 || flats.length > MAX_BULK_FLATS) {
    throw new BadInputError(`flats must be an array of 1 to ${MAX_BULK_FLATS} flat ids`);
  }
  flats.forEach((id: unknown, i) => {
    if (typeof id !== 'string') throw new BadInputError(`flats[${i}] must be a string, got ${JSON.stringify(id)}`);
    if (!isKnown(id)) throw new BadInputError(`flats[${i}]: unknown flat ${JSON.stringify(id.slice(0, 80))} (not in the credentials file)`);
  });
  return { flats: flats as string[], behaviour };
}

/** The current overrides; a flat set to ok has no entry. */
export class BehaviourTable {
  private readonly table = new Map<string, Behaviour>();

  /** The behaviour of flatId (ok when none is set). */
  get(flatId: string): Behaviour | undefined {
    return this.table.get(flatId);
  }

  /** Sets flatId's behaviour; ok removes the override. */
  set(flatId: string, behaviour: Behaviour): void {
    if (behaviour.mode === 'ok') this.table.delete(flatId);
    else this.table.set(flatId, behaviour);
  }

  /** Removes flatId's override; whether it had one. */
  delete(flatId: string): boolean {
    return this.table.delete(flatId);
  }

  /** Removes every override; how many there were. */
  clear(): number {
    const n = this.table.size;
    this.table.clear();
    return n;
  }

  /** Number of flats with an override. */
  get size(): number {
    return this.table.size;
  }

  /** The table as the control API shows it: flat id → {mode, delay_ms?}. */
  toJSON(): Record<string, { mode: Mode; delay_ms?: number }> {
    // fromEntries defines own properties, so even a flat named "__proto__" shows.
    return Object.fromEntries([...this.table].map(([id, b]) => [id, behaviourJson(b)]));
  }
}

/** A behaviour as JSON. */
export function behaviourJson(b: Behaviour): { mode: Mode; delay_ms?: number } {
  return b.delayMs === undefined ? { mode: b.mode } : { mode: b.mode, delay_ms: b.delayMs };
}
