/**
 * A fault, declared once, in the shape of Istio's HTTPFaultInjection: a delay
 * (fixedDelay + percentage) and/or an abort (httpStatus or grpcStatus +
 * percentage), with its target — the destination service and the requests
 * it applies to. The Istio plane renders it into a VirtualService; the local
 * plane applies it in-process. Declarations are checked when they are made:
 * a bad one is refused with a message naming the field.
 */
import { status } from '@grpc/grpc-js';
import { z } from 'zod';

/** The services a fault can target (Kubernetes Service names). */
export const HOSTS = ['devices', 'storage', 'query'] as const;
export type Host = (typeof HOSTS)[number];

/** gRPC status names Istio accepts in abort.grpcStatus. */
export const GRPC_STATUS_NAMES = Object.keys(status).filter((k) => Number.isNaN(Number(k))) as Array<keyof typeof status>;

const percentage = z.object({ value: z.number().min(0, 'must be from 0 to 100').max(100, 'must be from 0 to 100') }, { error: 'is required (Istio applies a fault without one to 0 % of requests)' });

/** Istio duration: whole or fractional seconds or milliseconds, e.g. "30s", "0.3s", "300ms". */
const duration = z.string().regex(/^\d+(\.\d+)?(ms|s)$/, 'must be a duration such as 30s or 300ms');

const stringMatch = z
  .object({ exact: z.string().min(1).optional(), prefix: z.string().min(1).optional(), regex: z.string().min(1).optional() })
  .refine((m) => [m.exact, m.prefix, m.regex].filter((x) => x !== undefined).length === 1, 'must set exactly one of exact, prefix, regex');

/** One request match (Istio HTTPMatchRequest, the parts flatline uses); a fault's matches are OR-ed. */
const match = z.object({
  uri: stringMatch.optional(),
  headers: z.record(z.string().regex(/^[a-z0-9-]+$/, 'header names are lower-case'), stringMatch).optional(),
});

const delay = z.object({ fixedDelay: duration, percentage });
const abort = z
  .object({
    httpStatus: z.number().int().min(200).max(599).optional(),
    grpcStatus: z.enum(GRPC_STATUS_NAMES as [string, ...string[]], { error: `must be a gRPC status name (${GRPC_STATUS_NAMES.slice(0, 4).join(', ')}, …)` }).optional(),
    percentage,
  })
  .refine((a) => (a.httpStatus === undefined) !== (a.grpcStatus === undefined), 'must set exactly one of httpStatus and grpcStatus');

const declaration = z
  .object({
    name: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a DNS label (lower-case letters, digits, -)'),
    host: z.enum(HOSTS),
    match: z.array(match).max(10000).default([]),
    fault: z
      .object({ delay: delay.optional(), abort: abort.optional() })
      .refine((f) => f.delay !== undefined || f.abort !== undefined, 'must set delay, abort or both'),
  })
  .strict();

/** A checked fault declaration. */
export type Fault = z.infer<typeof declaration>;
/** A declaration before checking. */
export type FaultInput = z.input<typeof declaration>;

/** A declaration refused: names the field and what is wrong. */
export class InvalidFaultError extends Error {
  override name = 'InvalidFaultError';
}

/** Checks a declaration; throws InvalidFaultError naming the first bad field. */
export function declareFault(input: unknown): Fault {
  const parsed = declaration.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue?.path.join('.') || 'fault';
    throw new InvalidFaultError(`${path}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

/** Milliseconds of an Istio duration string. */
export function durationMs(d: string): number {
  return d.endsWith('ms') ? Number(d.slice(0, -2)) : Number(d.slice(0, -1)) * 1000;
}
