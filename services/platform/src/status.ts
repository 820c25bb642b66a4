/**
 * Typed domain errors and the one place where they become gRPC statuses
 * (STYLE.md rule 5): an unknown error becomes INTERNAL and is logged.
 */
import { Metadata, status, type StatusObject } from '@grpc/grpc-js';
import type { Logger } from './logger.ts';

/** An error a domain layer raises on purpose; code says how it crosses the wire, trailers what a program needs besides the message. */
export abstract class DomainError extends Error {
  abstract readonly code: status;

  constructor(
    message: string,
    readonly trailers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

/**
 * The trailer with which storage names the one fetch result of an Append it
 * refuses as invalid (its index in the request). Only an INVALID_ARGUMENT
 * that carries it is storage's verdict about specific readings; any other
 * (from a proxy, a mesh, a version skew) says nothing about the data.
 */
export const REFUSED_FETCH_TRAILER = 'flatline-refused-fetch-index';

/** The caller sent something wrong; the message says what. */
export class InvalidArgumentError extends DomainError {
  readonly code = status.INVALID_ARGUMENT;
  override name = 'InvalidArgumentError';
}

/** What the caller asked for does not exist; the message names it. */
export class NotFoundError extends DomainError {
  readonly code = status.NOT_FOUND;
  override name = 'NotFoundError';
}

/** A bound of this process is reached (streams, sizes); the message names the bound and its setting. */
export class ResourceExhaustedError extends DomainError {
  readonly code = status.RESOURCE_EXHAUSTED;
  override name = 'ResourceExhaustedError';
}

/** A dependency cannot be reached now; the caller may retry later. */
export class UnavailableError extends DomainError {
  readonly code = status.UNAVAILABLE;
  override name = 'UnavailableError';
}

/** The system is not in a state this call can be served in (a setting must change first); the message says which. */
export class FailedPreconditionError extends DomainError {
  readonly code = status.FAILED_PRECONDITION;
  override name = 'FailedPreconditionError';
}

/** The caller's deadline passed, or would pass before a dependency answers. */
export class DeadlineExceededError extends DomainError {
  readonly code = status.DEADLINE_EXCEEDED;
  override name = 'DeadlineExceededError';
}

/** The one mapping from any thrown value to the status sent to the caller. */
export function toStatus(err: unknown, logger: Logger, method: string): StatusObject {
  if (err instanceof DomainError) {
    const metadata = new Metadata();
    for (const [key, value] of Object.entries(err.trailers)) metadata.set(key, value);
    return { code: err.code, details: err.message, metadata };
  }
  logger.error({ err, method }, 'unexpected error');
  return { code: status.INTERNAL, details: 'internal error', metadata: new Metadata() };
}
