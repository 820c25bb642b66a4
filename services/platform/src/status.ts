/**
 * Typed domain errors and the one place where they become gRPC statuses
 * (STYLE.md rule 5): an unknown error becomes INTERNAL and is logged.
 */
import { Metadata, status, type StatusObject } from '@grpc/grpc-js';
import type { Logger } from './logger.ts';

/** An error a domain layer raises on purpose; code says how it crosses the wire. */
export abstract class DomainError extends Error {
  abstract readonly code: status;
}

/** The caller sent something wrong; the message says what. */
export class InvalidArgumentError extends DomainError {
  readonly code = status.INVALID_ARGUMENT;
  override name = 'InvalidArgumentError';
}

/** A dependency cannot be reached now; the caller may retry later. */
export class UnavailableError extends DomainError {
  readonly code = status.UNAVAILABLE;
  override name = 'UnavailableError';
}

/** The caller's deadline passed, or would pass before a dependency answers. */
export class DeadlineExceededError extends DomainError {
  readonly code = status.DEADLINE_EXCEEDED;
  override name = 'DeadlineExceededError';
}

/** The one mapping from any thrown value to the status sent to the caller. */
export function toStatus(err: unknown, logger: Logger, method: string): StatusObject {
  if (err instanceof DomainError) {
    return { code: err.code, details: err.message, metadata: new Metadata() };
  }
  logger.error({ err, method }, 'unexpected error');
  return { code: status.INTERNAL, details: 'internal error', metadata: new Metadata() };
}
