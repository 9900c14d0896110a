// When an instance is scraped again: its interval, stretched by what its last body cost to parse and by failures.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_BACKOFF, PARSE_BUDGET, nextScrapeDelay } from '../../plugins/tenant-metrics/scraper.ts';

test('a cheap, healthy tenant is scraped on its interval', () => {
  assert.equal(nextScrapeDelay({ lastParseMs: 1, failuresInRow: 0 }, 15_000), 15_000);
});

test('a body that is slow to parse pushes the next scrape out to PARSE_BUDGET times its parse time', () => {
  assert.equal(nextScrapeDelay({ lastParseMs: 300, failuresInRow: 0 }, 200), 300 * PARSE_BUDGET);
});

test('failures in a row double the wait, up to MAX_BACKOFF intervals; one success resets it', () => {
  const waits = [0, 1, 2, 3, 4, 5, 50].map((failuresInRow) => nextScrapeDelay({ lastParseMs: 0, failuresInRow }, 1_000));
  assert.deepEqual(waits, [1_000, 2_000, 4_000, 8_000, 16_000, 1_000 * MAX_BACKOFF, 1_000 * MAX_BACKOFF]);
});
