/** The gRPC adapter of StorageService. */
import type { AppendRequest, AppendResponse, StorageServiceServer } from '@flatline/proto/flatline/storage/v1/storage.js';
import type { GrpcHost } from '@flatline/platform/grpc-host.js';
import { budgetMs } from '@flatline/platform/deadline.js';
import { UnavailableError } from '@flatline/platform/status.js';
import { toAppendBatch } from './domain/append-batch.ts';
import type { ReadingStore } from './mongo/reading-store.ts';

/** Dependencies of the storage service. */
export interface StorageServiceDeps {
  readonly host: GrpcHost;
  readonly store: ReadingStore;
  /** Bound on every database call, shortened to the caller's deadline. */
  readonly dbTimeoutMs: number;
  /** Whether the last health ping reached the database (with indexes in place). */
  readonly isDatabaseUp: () => boolean;
  /** Called when a write found the database unreachable. */
  readonly onUnavailable: () => void;
}

/** Builds the StorageService implementation. */
export function storageService(deps: StorageServiceDeps): StorageServiceServer {
  return {
    append: deps.host.unary<AppendRequest, AppendResponse>('Append', async (request, ctx) => {
      const batch = toAppendBatch(request);
      // Answer at once rather than wait out the driver's timeout while the
      // health watch already knows the database is away.
      if (!deps.isDatabaseUp()) throw new UnavailableError('database unavailable: storage is waiting for it to come back; retry later');
      const timeout = budgetMs(ctx.deadline, deps.dbTimeoutMs);
      try {
        const outcome = await deps.store.append(batch, timeout);
        return { inserted: outcome.inserted, duplicates: outcome.duplicates, fetches: batch.fetchCount };
      } catch (err) {
        if (err instanceof UnavailableError) deps.onUnavailable();
        throw err;
      }
    }),
  };
}
