import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decideAfterFailure, isSafeMethod, type FailureDecision, type FailureFacts } from '../../core/dataplane/policy.ts';

/** A GET on the first of two candidates, connected on a new connection, no answer yet: the baseline each row changes. */
const base: FailureFacts = {
  attempt: 0,
  candidates: 2,
  connected: true,
  answered: false,
  timedOut: false,
  bodyless: true,
  bodySent: false,
  method: 'GET',
  reused: false,
  retried: false,
  instanceGone: false,
  rewoken: false,
};

const rows: [string, Partial<FailureFacts>, FailureDecision][] = [
  // Nothing can go out twice once the instance answered or holds the request past its timeout.
  ['answered', { answered: true }, 'fail'],
  ['answered on a reused connection', { answered: true, reused: true }, 'fail'],
  ['timed out', { timedOut: true }, 'fail'],
  ['timed out on a reused connection', { timedOut: true, reused: true }, 'fail'],
  ['timed out before connecting', { timedOut: true, connected: false }, 'fail'],
  // A stale kept-alive connection: sent again once, fresh, whatever the method, if nothing of a body left.
  ['reused, bodyless GET', { reused: true }, 'resend-fresh'],
  ['reused, bodyless POST', { reused: true, method: 'POST' }, 'resend-fresh'],
  ['reused, bodyless, last candidate', { reused: true, attempt: 1 }, 'resend-fresh'],
  ['reused, bodyless POST, already resent, last candidate', { reused: true, retried: true, method: 'POST', attempt: 1 }, 'fail'],
  ['reused, bodyless GET, already resent', { reused: true, retried: true }, 'next-candidate'],
  ['reused, body sent', { reused: true, bodyless: false, bodySent: true, method: 'POST' }, 'fail'],
  // Never accepted: the request never reached the instance; any method moves on while its body is unsent.
  ['refused GET', { connected: false }, 'next-candidate'],
  ['refused POST with an unsent body (fast path)', { connected: false, bodyless: false, method: 'POST' }, 'next-candidate'],
  ['refused POST with a piped body (node:http path)', { connected: false, bodyless: false, bodySent: true, method: 'POST' }, 'fail'],
  ['refused on the last candidate', { connected: false, attempt: 1 }, 'wait-instance'],
  ['refused on the last candidate, already waited once', { connected: false, attempt: 1, rewoken: true }, 'fail'],
  ['refused, one candidate', { connected: false, candidates: 1 }, 'wait-instance'],
  // Accepted, then the instance died unanswered: only a safe request goes elsewhere.
  ['died holding a GET', {}, 'next-candidate'],
  ['died holding a HEAD', { method: 'HEAD' }, 'next-candidate'],
  ['died holding an OPTIONS', { method: 'OPTIONS' }, 'next-candidate'],
  ['died holding a bodyless POST', { method: 'POST' }, 'fail'],
  ['died holding a DELETE', { method: 'DELETE' }, 'fail'],
  ['died holding a PUT with a body', { method: 'PUT', bodyless: false, bodySent: true }, 'fail'],
  ['died holding a GET with a body', { bodyless: false, bodySent: true }, 'fail'],
  ['died holding a GET, last candidate', { attempt: 1 }, 'wait-instance'],
  ['died holding a GET, last candidate, already waited once', { attempt: 1, rewoken: true }, 'fail'],
  ['died holding a bodyless POST, last candidate', { attempt: 1, method: 'POST' }, 'fail'],
  ['died holding a GET, second of three', { attempt: 1, candidates: 3 }, 'next-candidate'],
  ['method names are case-sensitive (RFC 9110 §9.1)', { method: 'get' }, 'fail'],
  // The run the request went to is ending or replaced (an API restart or hibernation racing it, a crash): never
  // sent to its address again. What it cannot have acted on goes to the next candidate, or waits once for the
  // instance's next run; what it may have acted on fails.
  ['run gone, refused, one candidate', { instanceGone: true, connected: false, candidates: 1 }, 'wait-instance'],
  ['run gone, refused POST with an unsent body, one candidate', { instanceGone: true, connected: false, bodyless: false, method: 'POST', candidates: 1 }, 'wait-instance'],
  ['run gone, kept-alive connection closed unanswered, bodyless POST, one candidate', { instanceGone: true, reused: true, method: 'POST', candidates: 1 }, 'wait-instance'],
  ['run gone, kept-alive connection closed unanswered, GET, two candidates', { instanceGone: true, reused: true }, 'next-candidate'],
  ['run gone, died holding a GET, last candidate', { instanceGone: true, attempt: 1 }, 'wait-instance'],
  ['run gone, died holding a GET, already waited once', { instanceGone: true, attempt: 1, rewoken: true }, 'fail'],
  ['run gone, died holding a bodyless POST', { instanceGone: true, method: 'POST', candidates: 1 }, 'fail'],
  ['run gone, resent POST died unanswered on its fresh connection', { instanceGone: true, retried: true, method: 'POST', candidates: 1 }, 'fail'],
  ['run gone, refused POST with a piped body (node:http path)', { instanceGone: true, connected: false, bodyless: false, bodySent: true, method: 'POST', candidates: 1 }, 'fail'],
  ['run gone, answered', { instanceGone: true, answered: true, candidates: 1 }, 'fail'],
  ['run gone, timed out', { instanceGone: true, timedOut: true, candidates: 1 }, 'fail'],
];

for (const [name, change, expected] of rows) {
  test(`decideAfterFailure: ${name} → ${expected}`, () => {
    assert.equal(decideAfterFailure({ ...base, ...change }), expected);
  });
}

test('safe methods are GET, HEAD and OPTIONS only', () => {
  for (const method of ['GET', 'HEAD', 'OPTIONS']) assert.equal(isSafeMethod(method), true, method);
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE', 'CONNECT', 'TRACE', 'get', 'constructor', '__proto__', '']) {
    assert.equal(isSafeMethod(method), false, method);
  }
});
