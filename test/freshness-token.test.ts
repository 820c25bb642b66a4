/**
 * `flatline freshness --token` / FLATLINE_QUERY_TOKEN: the cluster's gateway
 * admits query callers only with a JWT, so the command must send it. A real
 * grpc-js server on port 0 stands where the gateway's sidecar checks it.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Server, ServerCredentials, type Metadata } from '@grpc/grpc-js';
import { QueryServiceService, type QueryServiceServer } from '@flatline/proto';
import { REPO_ROOT, tempDir } from '@flatline/stack';

const run = promisify(execFile);

describe('flatline freshness sends a bearer token', function () {
  this.timeout(60000);
  const dir = tempDir('freshness-token');
  const seen: Array<string | undefined> = [];
  const server = new Server();
  let address = '';

  before(async () => {
    const unimplemented = () => {
      throw new Error('not used');
    };
    const impl: QueryServiceServer = {
      getLatest: unimplemented,
      listMeasurements: unimplemented,
      watchFreshness: unimplemented,
      getFreshness: (call, callback) => {
        seen.push((call.metadata as Metadata).get('authorization')[0] as string | undefined);
        callback(null, { report: { flatCount: 1, p50AgeSeconds: 1, p99AgeSeconds: 1, worstAgeSeconds: 1, stalest: [], neverFetchedFlatIds: [], neverFetchedCount: 0, asOf: new Date() } });
      },
    };
    server.addService(QueryServiceService, impl);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    address = `127.0.0.1:${port}`;
  });

  after(() => {
    server.forceShutdown();
    dir.cleanup();
  });

  const freshness = (args: string[], env: Record<string, string> = {}) =>
    run(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'cli', 'src', 'main.ts'), 'freshness', '--query', address, '--state-dir', dir.path, '--json', ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env },
    });

  it('from --token, from FLATLINE_QUERY_TOKEN, and none without either', async () => {
    await freshness(['--token', 'tok-from-flag']);
    await freshness([], { FLATLINE_QUERY_TOKEN: 'tok-from-env' });
    const env = { ...process.env };
    delete env['FLATLINE_QUERY_TOKEN'];
    await run(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'cli', 'src', 'main.ts'), 'freshness', '--query', address, '--state-dir', dir.path, '--json'], { cwd: REPO_ROOT, env });
    expect(seen).to.deep.equal(['Bearer tok-from-flag', 'Bearer tok-from-env', undefined]);
  });
});
