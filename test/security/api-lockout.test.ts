// The management API out of tenants' reach (issue 18): tenants and the operator share 127.0.0.1, so failures
// are counted per credential prefix and address, and only failures are throttled. Bad tokens sent from the
// operator's own address never make the admin token wait.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { FailureLimiter, failureKey } from '../../core/api/rate-limit.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import authBearer from '../../plugins/auth-bearer/index.ts';
import { apiCall, type Reply } from '../helpers.ts';

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

async function bearerKernel(t: TestContext): Promise<{ kernel: TestKernel; admin: string }> {
  const kernel = await createTestKernel({ plugins: [authBearer] });
  t.after(() => kernel.close());
  return { kernel, admin: readFileSync(path.join(kernel.config.settings.dataDir, 'admin.token'), 'utf8').trim() };
}

/** `count` calls to GET /api/tokens from 127.0.0.1 with these headers, one after another; their statuses. */
async function attempts(kernel: TestKernel, headers: Record<string, string>, count: number): Promise<Reply[]> {
  const replies: Reply[] = [];
  for (let i = 0; i < count; i++) replies.push(await apiCall(kernel, 'GET', '/api/tokens', headers, undefined, '127.0.0.1'));
  return replies;
}

test('30 bad tokens from 127.0.0.1, then the admin token from 127.0.0.1 answers 200 at once; the bad sender gets 429 after its failures', { timeout: 60_000 }, async (t) => {
  const { kernel, admin } = await bearerKernel(t);
  const bad = `tnm_${'B'.repeat(43)}`;
  const replies = await attempts(kernel, bearer(bad), 30);
  assert.deepEqual(
    replies.map((r) => r.status),
    [...Array<number>(10).fill(401), ...Array<number>(20).fill(429)],
    'ten failures answer 401, every later one 429',
  );
  const throttled = replies.at(-1)!;
  assert.equal(JSON.parse(throttled.body).error.code, 'TNM_ERR_RATE_LIMITED');
  assert.ok(Number(throttled.headers['retry-after']) >= 1, 'with Retry-After');

  // The operator, same address, right after: no wait, no 429.
  const operator = await apiCall(kernel, 'GET', '/api/tokens', bearer(admin), undefined, '127.0.0.1');
  assert.equal(operator.status, 200, operator.body);
  // And the bad sender is still throttled: the operator's success does not reset it.
  assert.equal((await apiCall(kernel, 'GET', '/api/tokens', bearer(bad), undefined, '127.0.0.1')).status, 429);
});

test('requests with no token or a token sharing the admin token\'s prefix cannot lock the admin token out either', { timeout: 60_000 }, async (t) => {
  const { kernel, admin } = await bearerKernel(t);
  const none = await attempts(kernel, {}, 15);
  assert.equal(none.at(-1)!.status, 429, 'requests without a token are throttled as one bucket');
  // A tenant that learnt the first characters of the admin token (from a log line, a screen) fills that bucket.
  const lookalike = `${admin.slice(0, 20)}${'x'.repeat(admin.length - 20)}`;
  const replies = await attempts(kernel, bearer(lookalike), 15);
  assert.equal(replies.at(-1)!.status, 429, 'the lookalike token is throttled');
  for (let i = 0; i < 3; i++) {
    const operator = await apiCall(kernel, 'GET', '/api/tokens', bearer(admin), undefined, '127.0.0.1');
    assert.equal(operator.status, 200, 'a token that verifies is accepted before any throttle is consulted');
  }
});

test('the failure table is bounded: many distinct failing clients keep at most maxKeys entries', () => {
  const limiter = new FailureLimiter(10, 60_000, 1_000);
  const now = Date.now();
  for (let i = 0; i < 5_000; i++) limiter.fail(failureKey(`Bearer tnm_${i.toString(36).padStart(8, '0')}`, '127.0.0.1'), now);
  assert.equal(limiter.size, 1_000);
  // The most recent failing client is remembered (its tenth failure locks it), the oldest was forgotten.
  const key = (i: number): string => failureKey(`Bearer tnm_${i.toString(36).padStart(8, '0')}`, '127.0.0.1');
  const oldest = key(0);
  const recent = key(4_999);
  for (let i = 0; i < 9; i++) {
    limiter.fail(recent, now);
    limiter.fail(oldest, now);
  }
  assert.equal(limiter.retryAfter(oldest, now), 0, 'the oldest client starts over');
  assert.ok(limiter.retryAfter(recent, now) > 0, 'the recent client reached its limit');
});

test('failure buckets: the credential\'s first 12 characters and the address; none without a credential', () => {
  assert.equal(failureKey('Bearer tnm_abcdefgh_rest_of_it', '127.0.0.1'), 'tnm_abcdefgh\u0000127.0.0.1');
  assert.equal(failureKey('Bearer tnm_abcdefgh_other_rest', '127.0.0.1'), failureKey('bearer  tnm_abcdefgh_rest', '127.0.0.1'));
  assert.notEqual(failureKey('Bearer tnm_abcdefgh', '127.0.0.1'), failureKey('Bearer tnm_abcdefgh', '127.0.0.2'));
  assert.equal(failureKey(undefined, '127.0.0.1'), 'none\u0000127.0.0.1');
});
