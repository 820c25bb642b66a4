/** Promise-style calls on grpc-js (and ts-proto generated) clients, always with a deadline. */
import { credentials, loadPackageDefinition, Metadata, type CallOptions, type Client, type Interceptor, type ServiceClientConstructor, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';

/**
 * The status details of a call the xDS fault filter aborted (@grpc/grpc-js-xds,
 * gRFC A33): the only trace a proxyless mesh's abort leaves in the client.
 */
export const FAULT_INJECTED = 'Fault injected';

/** A callback-style unary method as ts-proto generates it. */
export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (err: ServiceError | null, response: Res) => void,
) => unknown;

/** Calls method with a deadline of deadlineMs from now (STYLE.md rule 6), through these interceptors of this call only when given. */
export function unaryCall<Req, Res>(client: Client, method: UnaryMethod<Req, Res>, request: Req, deadlineMs: number, interceptors?: Interceptor[]): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(client, request, new Metadata(), { deadline: new Date(Date.now() + deadlineMs), ...(interceptors === undefined ? {} : { interceptors }) }, (err, response) =>
      err ? reject(err) : resolve(response),
    );
  });
}

let healthClient: ServiceClientConstructor | undefined;

/** The grpc.health.v1.Health client, loaded from grpc-health-check's own proto. */
function healthConstructor(): ServiceClientConstructor {
  if (healthClient === undefined) {
    const pkg = loadPackageDefinition(loadSync(healthProtoPath, { enums: String })) as unknown as {
      grpc: { health: { v1: { Health: ServiceClientConstructor } } };
    };
    healthClient = pkg.grpc.health.v1.Health;
  }
  return healthClient;
}

/** Health status of service ('' for the whole server) at address: SERVING, NOT_SERVING, or "error: …". */
export async function checkHealth(address: string, service = '', deadlineMs = 2000): Promise<string> {
  const Health = healthConstructor();
  const client = new Health(address, credentials.createInsecure());
  try {
    const res = await unaryCall<{ service: string }, { status: string }>(client, client['Check'] as UnaryMethod<{ service: string }, { status: string }>, { service }, deadlineMs);
    return res.status;
  } catch (err) {
    return `error: ${(err as Error).message}`;
  } finally {
    client.close();
  }
}
