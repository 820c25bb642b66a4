/** Paging helpers of the ListMeasurements store tests: every page of a key, and two stores compared page by page. */
import { expect } from 'chai';
import type { Reading } from '@flatline/proto';
import type { RangeQuery } from '../../src/domain/query-args.ts';
import type { QueryStore, ReadingPage } from '../../src/mongo/query-store.ts';

/** A reading as the comparisons show it: time, device and seq. */
export const show = (r: Reading): string => `${r.takenAt?.toISOString()}/${r.deviceId}#${r.seq}`;

/** Every page of key by store, with the cursor of each page carried to the next as the service does. */
export async function pagesOf(store: QueryStore, key: RangeQuery['key'], pageSize: number): Promise<ReadingPage[]> {
  const pages: ReadingPage[] = [];
  let after: RangeQuery['after'];
  for (let i = 0; i < 500; i++) {
    const page = await store.range({ key, pageSize, after }, 60000); // SQLite scans per slot lookup: slow on a loaded machine
    pages.push(page);
    if (!page.more) return pages;
    after = page.last;
  }
  throw new Error('more than 500 pages');
}

/** Asserts that `actual` pages key exactly as `expected` does (readings, more, cursor) at each page size. */
export async function expectSamePages(expected: QueryStore, actual: QueryStore, key: RangeQuery['key'], sizes: readonly number[]): Promise<void> {
  for (const pageSize of sizes) {
    const a = await pagesOf(expected, key, pageSize);
    const b = await pagesOf(actual, key, pageSize);
    expect(b.map((p) => p.readings.map(show)), `page size ${pageSize}`).to.deep.equal(a.map((p) => p.readings.map(show)));
    expect(b.map((p) => [p.more, p.last]), `page size ${pageSize}`).to.deep.equal(a.map((p) => [p.more, p.last]));
  }
}
