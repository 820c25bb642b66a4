/** The range-reads suite's data (the suite itself runs with `npm run bench -- --only range-reads [--day 100]`; npm test only prints its plan). */
import { expect } from 'chai';
import { dayChunks, rangeReadsPlan, rangeReadsSuite, readingsOf } from '@flatline/bench';
import { readingsOfDocs, type FetchDoc, type ReadingDoc } from '@flatline/platform';

const ctx = (day?: number) => ({ quick: false, keep: false, say: () => undefined, ...(day === undefined ? {} : { sizes: { day } }) });

describe('bench range-reads: the day it loads', () => {
  it('--day 100 is the issue\'s day: 100 flats × 3 devices × a reading a second, 25,920,000 readings, as fetch documents only; without it every layout at 518,400', () => {
    expect(readingsOf(rangeReadsPlan(false, 100))).to.equal(25_920_000);
    expect(rangeReadsSuite.plan(ctx(100))).to.match(/^load 25920000 readings \(100 flats x 3 devices, one per 1 s, fetched every 5 s, 24 h\) as fetch documents into FerretDB on PostgreSQL/);
    expect(readingsOf(rangeReadsPlan(false))).to.equal(518_400);
    expect(rangeReadsSuite.plan(ctx())).to.match(/^load 518400 readings .* into FerretDB on SQLite and on PostgreSQL/);
  });

  it('makes every reading once, fetch documents of the readings of one fetch and minute (5 a device), the same readings as the one-document-per-reading layout', () => {
    const p = { ...rangeReadsPlan(false, 2), hours: 1 };
    const startMs = Date.UTC(2026, 11, 1, 10, 0, 0);
    const fetchDocs: FetchDoc[] = [];
    for (const c of dayChunks(p, startMs, 'fetch')) fetchDocs.push(...(c.docs as FetchDoc[]));
    const readingDocs: ReadingDoc[] = [];
    for (const c of dayChunks(p, startMs, 'reading')) readingDocs.push(...(c.docs as ReadingDoc[]));
    const fromFetch = readingsOfDocs(fetchDocs);
    expect(fromFetch).to.have.length(readingsOf(p)).and.to.have.length(2 * 3 * 3600);
    expect(fromFetch).to.deep.equal(readingsOfDocs(readingDocs));
    // A fetch every 5 s with a reading a second: 15 readings (5 a device) per document; fetches never straddle a minute here.
    expect(new Set(fetchDocs.map((d) => (JSON.parse(d.readings_json) as unknown[]).length))).to.deep.equal(new Set([15]));
    expect(fetchDocs).to.have.length(2 * 720);
  });
});
