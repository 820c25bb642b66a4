/** The services' MongoDB client against a real FerretDB that is down when the client starts. */
import { expect } from 'chai';
import { join } from 'node:path';
import { MongoClient } from 'mongodb';
import { createMongoClient } from '../src/mongo.ts';
import { tempDir, TestDatabase } from '@flatline/stack';

async function tryUpsert(client: MongoClient): Promise<string> {
  try {
    await client.db().collection<{ _id: number; a: number }>('probe').updateOne({ _id: 1 }, { $set: { a: 1 } }, { upsert: true, timeoutMS: 500 });
    return 'ok';
  } catch (err) {
    return (err as Error).name;
  }
}

describe('createMongoClient (real FerretDB)', function () {
  this.timeout(60000);
  const dir = tempDir('platform-mongo');
  const db = new TestDatabase(join(dir.path, 'db'));

  after(async () => {
    await db.stop();
    dir.cleanup();
  });

  it('connects once the database comes up, although its first operations ran while it was down', async () => {
    await db.start(); // fixes the port
    await db.stop();
    const client = createMongoClient(db.uri, 500);
    try {
      expect(await tryUpsert(client)).to.equal('MongoServerSelectionError');
      expect(await tryUpsert(client)).to.not.equal('ok');
      await db.start();
      // mongodb 7.9 on its own answers MongoTopologyClosedError here for ever
      // (the closed topology of the failed first connect is kept).
      let last = '';
      for (let i = 0; i < 20 && last !== 'ok'; i++) {
        last = await tryUpsert(client);
        if (last !== 'ok') await new Promise((r) => setTimeout(r, 250));
      }
      expect(last).to.equal('ok');
    } finally {
      await client.close();
    }
  });
});
