/**
 * TCP faults, declared in the same catalogue as the HTTP and gRPC ones: a
 * set of Toxiproxy toxics (https://github.com/Shopify/toxiproxy#toxics) on one
 * network link, and, on the device link, a set of flats each with its own
 * toxics ("flat 7 30 s, flat 13 5 s, flat 21 12 s"). Declarations are checked
 * when they are made, like fault.ts's: a bad one is refused with an
 * InvalidFaultError naming the field.
 *
 * Toxic attributes keep Toxiproxy's own names and units (latency in ms, rate in
 * KB/s, slicer delay in µs, ...) so that its documentation reads one to one, and
 * must be whole numbers where Toxiproxy wants integers (it refuses 1.5 ms).
 * Toxicity is Toxiproxy's: a fraction 0..1 of connections, never a percentage.
 *
 * This module only declares; stack/ applies the toxics through its Toxiproxy client.
 */
import { z } from 'zod';
import { InvalidFaultError } from './fault.ts';

/** The network links a TCP fault can cut, each one Toxiproxy proxy between a client and a server. */
export const LINKS = [
  /** storage → MongoDB/FerretDB: Append's writes of readings. */
  'storage-db',
  /** query → MongoDB/FerretDB: the reads behind latest, ranges and freshness. */
  'query-db',
  /** ingestion → MongoDB/FerretDB: the lease rounds that share the flats between the replicas (the outbox is a local file). */
  'ingestion-db',
  /** ingestion → device simulator: the HTTPS (Basic auth) polls of each flat's meters. */
  'ingestion-devices',
  /** ingestion → storage: the gRPC Append calls that hand readings over. */
  'ingestion-storage',
] as const;
/** A network link a TCP fault can cut. */
export type Link = (typeof LINKS)[number];

/** Every service's link to the database. */
export const DB_LINKS: readonly Link[] = ['storage-db', 'query-db', 'ingestion-db'];

/** The one link whose faults may differ per flat: each flat's device is polled over its own connections. */
export const DEVICE_LINK = 'ingestion-devices' satisfies Link;

/** The toxic types Toxiproxy 2.5 has. */
export const TCP_TOXIC_TYPES = ['latency', 'bandwidth', 'slow_close', 'timeout', 'reset_peer', 'slicer', 'limit_data'] as const;
/** A toxic type Toxiproxy knows. */
export type TcpToxicType = (typeof TCP_TOXIC_TYPES)[number];

/** Which direction a toxic acts on: upstream is client → server, downstream server → client. */
export const TCP_STREAMS = ['upstream', 'downstream'] as const;
/** Which direction a toxic acts on. */
export type TcpStream = (typeof TCP_STREAMS)[number];

/** The most toxics one connection can carry: one per type (per stream would allow 14, but one list stays readable). */
const MAX_TOXICS = TCP_TOXIC_TYPES.length;

/** Flat ids as the wire contracts define them; a copy of services/platform/src/ids.ts's FLAT_ID (mesh does not depend on platform). */
const FLAT_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** A whole number of unit, at least min (or above it when exclusive), with messages Toxiproxy's documentation would use. */
function whole(unit: string, min: 0 | 1): z.ZodNumber {
  return z
    .number({ error: (iss) => (iss.input === undefined ? `is required (${unit})` : `must be a number (${unit})`) })
    .int(`must be a whole number of ${unit} (Toxiproxy refuses fractions)`)
    .min(min, min === 0 ? 'must be ≥ 0' : 'must be > 0');
}

/** Attributes of one toxic type: strict, so that a misspelt attribute is refused rather than left at Toxiproxy's default. */
function attributes<S extends z.ZodRawShape>(type: TcpToxicType, shape: S) {
  const names = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (iss) => {
      if (iss.code === 'unrecognized_keys') return `${type} has no attribute ${iss.keys.join(', ')} (it takes ${names})`;
      if (iss.code === 'invalid_type') return `must be an object of ${type} attributes (${names})`;
      return undefined;
    },
  });
}

const ATTRIBUTES = {
  /** Every chunk of data is delayed by latency ± jitter ms. */
  latency: attributes('latency', { latency: whole('ms', 0), jitter: whole('ms', 0).default(0) }),
  /** Throughput limited to rate KB/s. */
  bandwidth: attributes('bandwidth', { rate: whole('KB/s', 1) }),
  /** The close of the socket is delayed by delay ms. */
  slow_close: attributes('slow_close', { delay: whole('ms', 0) }),
  /** No data goes through; the connection is closed after timeout ms (0: held open until the toxic is removed — a black hole). */
  timeout: attributes('timeout', { timeout: whole('ms', 0) }),
  /** The connection is reset (TCP RST) timeout ms after the first data (0: at once). */
  reset_peer: attributes('reset_peer', { timeout: whole('ms', 0) }),
  /** Data is cut into pieces of average_size ± size_variation bytes, delay µs apart. */
  slicer: attributes('slicer', { average_size: whole('bytes', 1), size_variation: whole('bytes', 0).default(0), delay: whole('µs', 0).default(0) }).refine(
    (a) => a.size_variation < a.average_size,
    { path: ['size_variation'], message: 'must be less than average_size (a piece cannot be empty)' },
  ),
  /** The connection is closed once bytes bytes went through. */
  limit_data: attributes('limit_data', { bytes: whole('bytes', 1) }),
} satisfies Record<TcpToxicType, z.ZodType>;

const toxicity = z
  .number({ error: 'must be a fraction from 0 to 1' })
  .min(0, 'must be a fraction from 0 to 1')
  .max(1, { error: (iss) => `must be a fraction from 0 to 1, not a percentage (for ${String(iss.input)} % write ${Number(iss.input) / 100})` })
  .default(1);

const toxicOf = <T extends TcpToxicType>(type: T) =>
  z.strictObject({
    type: z.literal(type),
    stream: z.enum(TCP_STREAMS, { error: 'must be upstream (client → server) or downstream (server → client)' }).default('downstream'),
    toxicity,
    attributes: ATTRIBUTES[type],
  });

const toxic = z.discriminatedUnion(
  'type',
  [toxicOf('latency'), toxicOf('bandwidth'), toxicOf('slow_close'), toxicOf('timeout'), toxicOf('reset_peer'), toxicOf('slicer'), toxicOf('limit_data')],
  {
    error: (iss) => {
      if (iss.code === 'invalid_union') return `must be one of Toxiproxy's toxics (${TCP_TOXIC_TYPES.join(', ')})`;
      if (iss.code === 'invalid_type') return 'must be an object {type, stream, toxicity, attributes}';
      return undefined;
    },
  },
);

/** A list of toxics for one connection: at most one per type and stream, since stack/ names each toxic by fault, type and stream. */
const toxicList = z
  .array(toxic, { error: 'must be a list of toxics' })
  .max(MAX_TOXICS, `must have at most ${MAX_TOXICS} toxics`)
  .superRefine((list, ctx) => {
    const seen = new Map<string, number>();
    list.forEach((t, i) => {
      const key = `${t.type} ${t.stream}`;
      const first = seen.get(key);
      if (first !== undefined) ctx.addIssue({ code: 'custom', path: [i], message: `repeats the ${key} toxic of item ${first} (one toxic per type and stream)` });
      else seen.set(key, i);
    });
  });

const declaration = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a DNS label (lower-case letters, digits, -)'),
    link: z.enum(LINKS, { error: `must be one of the links (${LINKS.join(', ')})` }),
    toxics: toxicList.optional(),
    flats: z
      .record(z.string().regex(FLAT_ID, 'must be a flat id: 1 to 64 characters of [A-Za-z0-9_-]'), toxicList.min(1, 'must have 1 to 7 toxics'), { error: 'must map flat ids to lists of toxics' })
      .refine((f) => Object.keys(f).length > 0, 'must name at least one flat (or leave flats out)')
      .optional(),
  })
  .superRefine((d, ctx) => {
    if (d.flats !== undefined && d.link !== DEVICE_LINK) {
      ctx.addIssue({ code: 'custom', path: ['flats'], message: `are only for the ${DEVICE_LINK} link (a ${d.link} connection does not belong to one flat)` });
    }
    if (d.flats === undefined && (d.toxics === undefined || d.toxics.length === 0)) {
      ctx.addIssue({ code: 'custom', path: ['toxics'], message: `must have 1 to ${MAX_TOXICS} toxics (or, on ${DEVICE_LINK}, flats with their own)` });
    }
  })
  .transform((d) => ({ ...d, toxics: d.toxics ?? [] }));

/** A checked TCP fault declaration: every default filled in; toxics is [] when only flats carry toxics. */
export type TcpFault = z.output<typeof declaration>;
/** A TCP fault declaration before checking. */
export type TcpFaultInput = z.input<typeof declaration>;
/** One checked toxic of a TCP fault, as stack/ hands it to Toxiproxy (plus the name from toxicName). */
export type TcpToxic = TcpFault['toxics'][number];

/** Checks a TCP fault declaration; throws InvalidFaultError naming the first bad field, e.g. `toxics.0.attributes.latency: must be ≥ 0`. */
export function declareTcpFault(input: unknown): TcpFault {
  const parsed = declaration.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue?.path.join('.') || 'fault';
    // A bad record key: zod says only "Invalid key in record"; the key's own issue says why.
    const message = issue?.code === 'invalid_key' ? issue.issues[0]?.message : issue?.message;
    throw new InvalidFaultError(`${path}: ${message ?? 'invalid'}`);
  }
  return parsed.data;
}

/** The toxics that act on one connection of the fault's link: for a flat named in flats, that flat's; otherwise the link's own. */
export function tcpToxicsFor(fault: TcpFault, flatId?: string): readonly TcpToxic[] {
  if (flatId !== undefined && fault.flats !== undefined && Object.hasOwn(fault.flats, flatId)) return fault.flats[flatId]!;
  return fault.toxics;
}

/** The stable Toxiproxy name of one of the fault's toxics, `<fault name>-<type>-<stream>`, so that turning it off finds what turning it on added. */
export function toxicName(fault: Pick<TcpFault, 'name'>, toxic: Pick<TcpToxic, 'type' | 'stream'>): string {
  return `${fault.name}-${toxic.type}-${toxic.stream}`;
}

/** Options a TCP scenario may take. */
export interface TcpScenarioOptions {
  /** Flats to target (device scenarios); none (and no perFlat) means every flat. */
  readonly flats?: readonly string[];
  /** Each flat's own delay in ms (devices-tcp-slow: latency; devices-dribble: the pause between pieces); these flats are targeted too. Other scenarios ignore it. */
  readonly perFlat?: Readonly<Record<string, number>>;
  /** Share of connections affected, 0–100 like the HTTP scenarios'; build passes toxicity = percent / 100 to Toxiproxy. */
  readonly percent?: number;
  /** Delay in ms: latency (db-slow, devices-tcp-slow) or the pause between pieces (devices-dribble). */
  readonly delayMs?: number;
  /** Jitter in ms added to latency (db-slow, devices-tcp-slow). */
  readonly jitterMs?: number;
  /** Average size in bytes of the pieces devices-dribble cuts data into. */
  readonly chunkBytes?: number;
  /** Bytes devices-cut lets through before it closes the connection. */
  readonly limitBytes?: number;
}

/** A named TCP scenario: build returns one declaration per link it cuts (one declaration, one link). */
export interface TcpScenario {
  readonly name: string;
  readonly description: string;
  readonly build: (o: TcpScenarioOptions) => readonly TcpFault[];
}

/** The options' percent as a Toxiproxy toxicity; refused here, under its own name, rather than as toxicity 1.5 later. */
function toxicityOf(o: TcpScenarioOptions): number {
  const percent = o.percent ?? 100;
  if (!(percent >= 0 && percent <= 100)) throw new InvalidFaultError(`percent: must be from 0 to 100, got ${percent}`);
  return percent / 100;
}

/** One declaration per database link, named `<scenario>-<link>`, each with the same toxic. */
function onDbLinks(scenario: string, t: TcpToxicInput): readonly TcpFault[] {
  return DB_LINKS.map((link) => declareTcpFault({ name: `${scenario}-${link}`, link, toxics: [t] }));
}

type TcpToxicInput = NonNullable<TcpFaultInput['toxics']>[number];

/**
 * A device-link declaration: with no flats chosen, the toxic (built with the
 * default delay) acts on every connection; otherwise each chosen flat gets its
 * own, with its perFlat delay when it has one.
 */
function onDeviceLink(name: string, o: TcpScenarioOptions, defaultDelayMs: number, toxicFor: (delayMs: number) => TcpToxicInput): readonly TcpFault[] {
  const perFlat = o.perFlat ?? {};
  const flats = [...new Set([...(o.flats ?? []), ...Object.keys(perFlat)])];
  const delayMs = o.delayMs ?? defaultDelayMs;
  if (flats.length === 0) return [declareTcpFault({ name, link: DEVICE_LINK, toxics: [toxicFor(delayMs)] })];
  return [declareTcpFault({ name, link: DEVICE_LINK, flats: Object.fromEntries(flats.map((id) => [id, [toxicFor(perFlat[id] ?? delayMs)]])) })];
}

/** Every TCP scenario, by name; none shares a name with SCENARIOS (the HTTP and gRPC ones). */
export const TCP_SCENARIOS: readonly TcpScenario[] = [
  {
    name: 'db-reset',
    description: 'every service’s database connections are reset (TCP RST) at their first data (default: every connection)',
    build: (o) => onDbLinks('db-reset', { type: 'reset_peer', toxicity: toxicityOf(o), attributes: { timeout: 0 } }),
  },
  {
    name: 'db-slow',
    description: 'every service’s database answers late (default: 1 s latency, every connection)',
    build: (o) => onDbLinks('db-slow', { type: 'latency', toxicity: toxicityOf(o), attributes: { latency: o.delayMs ?? 1000, jitter: o.jitterMs ?? 0 } }),
  },
  {
    name: 'db-blackhole',
    description: 'every service’s database connections take data and answer nothing until the fault is removed (default: every connection)',
    build: (o) => onDbLinks('db-blackhole', { type: 'timeout', toxicity: toxicityOf(o), attributes: { timeout: 0 } }),
  },
  {
    name: 'devices-tcp-slow',
    description: 'the device simulator’s answers to the chosen flats come late at the TCP level, each flat its own delay (default: 30 s, every connection)',
    build: (o) =>
      onDeviceLink('devices-tcp-slow', o, 30000, (delayMs) => ({ type: 'latency', toxicity: toxicityOf(o), attributes: { latency: delayMs, jitter: o.jitterMs ?? 0 } })),
  },
  {
    name: 'devices-dribble',
    description: 'the device simulator’s answers to the chosen flats trickle in small pieces (default: 8 ± 4 bytes every 20 ms, every connection)',
    build: (o) => {
      const chunkBytes = o.chunkBytes ?? 8;
      return onDeviceLink('devices-dribble', o, 20, (delayMs) => ({
        type: 'slicer',
        toxicity: toxicityOf(o),
        // Toxiproxy's slicer delay is in µs.
        attributes: { average_size: chunkBytes, size_variation: Math.floor(chunkBytes / 2), delay: delayMs * 1000 },
      }));
    },
  },
  {
    name: 'devices-cut',
    description: 'the device simulator’s connections for the chosen flats close after a few bytes, mid-answer (default: 1024 bytes, every connection)',
    // perFlat's delays mean nothing to limit_data: only the flats chosen in flats are cut.
    build: (o) => onDeviceLink('devices-cut', { ...o, perFlat: undefined }, 0, () => ({ type: 'limit_data', toxicity: toxicityOf(o), attributes: { bytes: o.limitBytes ?? 1024 } })),
  },
  {
    name: 'storage-link-reset',
    description: 'ingestion’s gRPC connections to storage are reset (TCP RST) at their first data (default: every connection)',
    build: (o) => [declareTcpFault({ name: 'storage-link-reset', link: 'ingestion-storage', toxics: [{ type: 'reset_peer', toxicity: toxicityOf(o), attributes: { timeout: 0 } }] })],
  },
];

/** The TCP scenario called name, or undefined. */
export function tcpScenario(name: string): TcpScenario | undefined {
  return TCP_SCENARIOS.find((s) => s.name === name);
}
