import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TOOLS_BIN, type StartedServer, eventually, startInProcessService, tempDir, TestDatabase } from '@flatline/stack';
import { checkHealth } from '@flatline/platform';

const run = promisify(execFile);
const grpcurl = join(TOOLS_BIN, 'grpcurl');

/** Runs the real grpcurl; resolves with its output and exit code (grpcurl exits non-zero on an error status). */
async function rpc(args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run(grpcurl, args, { timeout: 20000 });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

describe('grpcurl against the query service, with no .proto files (reflection)', function () {
  this.timeout(60000);
  const dir = tempDir('grpcurl');
  const db = new TestDatabase(`${dir.path}/ferretdb`);
  let storage: StartedServer;
  let query: StartedServer;

  before(async () => {
    await db.start();
    [storage, query] = await Promise.all([startInProcessService('storage', db.uri, dir.path), startInProcessService('query', db.uri, dir.path)]);
    await eventually('query to answer SERVING', async () => (await checkHealth(query.grpc)) === 'SERVING', 10000);
    await eventually('storage to answer SERVING', async () => (await checkHealth(storage.grpc)) === 'SERVING', 10000);
    const append = {
      fetches: [{ flat_id: '17', fetched_at: new Date().toISOString(), readings: [{ flat_id: '17', device_id: 'heat-1', seq: 1, taken_at: '2026-11-29T08:00:00Z', quantity: 'temperature', unit: 'Cel', value: 21.5 }] }],
    };
    const res = await rpc(['-plaintext', '-d', JSON.stringify(append), storage.grpc, 'flatline.storage.v1.StorageService/Append']);
    expect(res.code, res.out).to.equal(0);
    // query answers from a copy of the flat state reloaded every 500 ms: wait for the reading to show.
    const shown = async (): Promise<boolean> => (await rpc(['-plaintext', '-d', '{"flat_id":"17"}', query.grpc, 'flatline.query.v1.QueryService/GetLatest'])).out.includes('heat-1');
    await eventually('GetLatest (through grpcurl) to show heat-1 of flat 17', shown, 5000, 200);
  });

  after(async () => {
    await Promise.all([storage?.stop(), query?.stop()]);
    await db.stop();
    dir.cleanup();
  });

  it('lists the query service and health', async () => {
    const res = await rpc(['-plaintext', query.grpc, 'list']);
    expect(res.code, res.out).to.equal(0);
    expect(res.out.split('\n')).to.include.members(['flatline.query.v1.QueryService', 'grpc.health.v1.Health']);
  });

  it('describes QueryService with its documentation', async () => {
    const res = await rpc(['-plaintext', query.grpc, 'describe', 'flatline.query.v1.QueryService']);
    expect(res.code, res.out).to.equal(0);
    expect(res.out).to.contain('rpc GetLatest ( .flatline.query.v1.GetLatestRequest ) returns ( .flatline.query.v1.GetLatestResponse )');
    expect(res.out).to.contain('// GetLatest returns the latest reading of each device of one flat.');
  });

  it('describes a message that uses google.protobuf.Timestamp from another file', async () => {
    const res = await rpc(['-plaintext', query.grpc, 'describe', 'flatline.query.v1.GetLatestResponse']);
    expect(res.code, res.out).to.equal(0);
    expect(res.out).to.contain('.flatline.reading.v1.Reading readings = 2;').and.contain('.google.protobuf.Timestamp last_fetch_at = 3;');
  });

  it('calls GetLatest and gets the stored reading with its timestamp', async () => {
    const res = await rpc(['-plaintext', '-d', '{"flat_id":"17"}', query.grpc, 'flatline.query.v1.QueryService/GetLatest']);
    expect(res.code, res.out).to.equal(0);
    const body = JSON.parse(res.out) as { flatId: string; readings: Array<{ seq: string; takenAt: string; value: number }> };
    expect(body.flatId).to.equal('17');
    expect(body.readings).to.deep.equal([{ flatId: '17', deviceId: 'heat-1', seq: '1', takenAt: '2026-11-29T08:00:00Z', quantity: 'temperature', unit: 'Cel', value: 21.5 }]);
  });

  it('shows a readable INVALID_ARGUMENT for a bad flat id', async () => {
    const res = await rpc(['-plaintext', '-d', '{"flat_id":"no such/flat"}', query.grpc, 'flatline.query.v1.QueryService/GetLatest']);
    expect(res.code).to.not.equal(0);
    expect(res.out).to.contain('Code: InvalidArgument').and.contain('flat_id must be 1 to 64 characters');
  });

  it('checks health with grpc.health.v1', async () => {
    const res = await rpc(['-plaintext', '-d', '{"service":"flatline.query.v1.QueryService"}', query.grpc, 'grpc.health.v1.Health/Check']);
    expect(res.code, res.out).to.equal(0);
    expect(JSON.parse(res.out)).to.deep.equal({ status: 'SERVING' });
  });
});
