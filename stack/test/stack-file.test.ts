import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readStackFile, StackFileError } from '../src/stack-file.ts';

describe('stack.json (read with its schema)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'flatline-stack-file-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const good = { query: '127.0.0.1:7102', storage: '127.0.0.1:7101', devices: '127.0.0.1:8443', devicesControl: '127.0.0.1:8444', database: '127.0.0.1:27117', ingestion: [{ grpc: '127.0.0.1:7110' }], metrics: { storage: '127.0.0.1:9101' }, pid: process.pid };
  const write = (value: unknown) => writeFileSync(join(dir, 'stack.json'), JSON.stringify(value));

  it('reads a well-formed file, and none when there is no file', () => {
    expect(readStackFile(join(dir, 'nowhere'))).to.equal(undefined);
    write(good);
    expect(readStackFile(dir)?.query).to.equal('127.0.0.1:7102');
  });

  it('refuses a running stack\'s file of another shape, naming the field (not half-read)', () => {
    write({ ...good, query: 7102 });
    expect(() => readStackFile(dir)).to.throw(StackFileError, /stack\.json is not a stack file of this flatline: query:/);
    write({ ...good, ingestion: undefined });
    expect(() => readStackFile(dir)).to.throw(StackFileError, /ingestion/);
  });

  it('takes a malformed file of a stack that is gone as none', () => {
    write({ ...good, query: 7102, pid: 2 ** 22 + 12345 });
    expect(readStackFile(dir)).to.equal(undefined);
  });
});
