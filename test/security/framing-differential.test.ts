// Differential conformance of the fast data plane's HTTP/1.1 framing against Node's own strict parser (llhttp).
// A seeded corpus of generated and mutated requests and responses (control bytes everywhere, bare CR/LF,
// obs-fold, repeated and conflicting Content-Length, CL with TE, Transfer-Encoding variants, bad chunk sizes,
// extensions and trailers, absolute-form targets, two Hosts, Connection listing framing headers...) goes
// through the fast path's parser and through llhttp. Whatever llhttp refuses, Tenement refuses; what both
// accept has the same method, target, status and body, and ends at the same byte (a canary message follows
// each one). The head the fast path would forward, with the bytes it would forward, is parsed by llhttp again:
// the app behind the proxy reads exactly the one message the proxy framed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChunkedScanner } from '../../core/dataplane/chunked.ts';
import { forwardedRequestHead, forwardedResponseHead } from '../../core/dataplane/forwarded-head.ts';
import { bodilessResponse, hasBareLf, nodeRequestProblem, parseRequestHead, parseResponseHead, type RequestHead, type ResponseHead } from '../../core/dataplane/http1.ts';
import { RequestBodyFraming } from '../../core/dataplane/request-body.ts';
import { hostnameOf } from '../../core/server.ts';
import { llhttpParse, type LlMessage } from './framing-llhttp.ts';
import { prng } from '../prng.ts';
import { Gen, generateRequest, generateResponse } from './framing-corpus.ts';

const CASES = 10_000;
const REQUEST_CANARY = Buffer.from('GET /__next HTTP/1.1\r\nHost: next.localhost\r\n\r\n', 'latin1');
const RESPONSE_CANARY = Buffer.from('HTTP/1.1 299 Next\r\nContent-Length: 4\r\n\r\nnext', 'latin1');
/** Follows what is forwarded: the recipient must read it as the message after the forwarded one. */
const FORWARD_REQUEST_CANARY = Buffer.from('GET /__after HTTP/1.1\r\nHost: next.localhost\r\n\r\n', 'latin1');
const FORWARD_RESPONSE_CANARY = Buffer.from('HTTP/1.1 298 After\r\nContent-Length: 5\r\n\r\nafter', 'latin1');

/** The same next message (or none) in both parses: the first message ended at the same byte. */
function sameNext(a: LlMessage | undefined, b: LlMessage | undefined): boolean {
  if (!a || !b) return !a === !b || (!a?.complete && !b?.complete);
  return a.method === b.method && a.url === b.url && a.status === b.status && a.complete === b.complete && a.body.equals(b.body);
}


type Verdict =
  | { kind: 'reject'; why: string }
  | { kind: 'incomplete' }
  | { kind: 'handoff' }
  | { kind: 'accept'; head: RequestHead; source: Buffer; body: Buffer; forwarded: Buffer; consumed: number };

/** What the fast path does with these bytes, step by step as ClientConnection and RequestBodyFraming do it. */
function fastRequest(data: Buffer): Verdict {
  let skip = 0;
  while (data[skip] === 13 && data[skip + 1] === 10) skip += 2;
  const buffer = data.subarray(skip);
  const end = buffer.indexOf('\r\n\r\n');
  if (end === -1) return hasBareLf(buffer) ? { kind: 'reject', why: 'bare LF' } : { kind: 'incomplete' };
  const head = parseRequestHead(buffer, end);
  if (typeof head === 'string') return { kind: 'reject', why: head };
  if (head === null || hostnameOf(head.host) === null) return { kind: 'handoff' };
  const decoded: Buffer[] = [];
  const framing = new RequestBodyFraming(head, (d) => decoded.push(Buffer.from(d)));
  const rest = buffer.subarray(end + 4);
  const cut = framing.measure(rest);
  if (framing.error) return { kind: 'reject', why: framing.error };
  if (!framing.done) return { kind: 'incomplete' };
  return { kind: 'accept', head, source: buffer, body: Buffer.concat(decoded), forwarded: rest.subarray(0, cut), consumed: skip + end + 4 + cut };
}

/** The node:http path, for what the fast path hands over: llhttp, then the checks llhttp leaves out. */
function nodePathRejects(first: LlMessage | undefined, error: string | null): boolean {
  if (!first?.complete) return error !== null;
  if (first.method === 'CONNECT') return true; // answered 405
  const headers = first.headers;
  let host: string | undefined;
  for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() === 'host') host ??= headers[i + 1];
  return nodeRequestProblem(first.method, first.url, headers) !== null || hostnameOf(host) === null;
}

interface Tally {
  cases: number;
  llhttpRejects: number;
  fastRejects: number;
  stricter: number;
  handoffs: number;
  bothAccept: number;
  disagreements: string[];
}

function compareRequest(data: Buffer, tally: Tally): void {
  const input = Buffer.concat([data, REQUEST_CANARY]);
  const ll = llhttpParse('request', input);
  const first = ll.messages[0];
  const llAccepts = first?.complete === true;
  const llRejects = !llAccepts && ll.error !== null;
  if (llRejects) tally.llhttpRejects++;
  const fast = fastRequest(input);
  const show = JSON.stringify(data.toString('latin1'));
  if (fast.kind === 'handoff') {
    tally.handoffs++;
    if (llRejects && !nodePathRejects(first, ll.error)) tally.disagreements.push(`node path accepts what llhttp rejects: ${show}`);
    return;
  }
  if (fast.kind === 'reject') {
    tally.fastRejects++;
    if (llAccepts) tally.stricter++;
    return;
  }
  if (fast.kind === 'incomplete') {
    if (llAccepts) tally.disagreements.push(`fast path waits for more, llhttp has a complete message: ${show}`);
    return;
  }
  if (!llAccepts) return void tally.disagreements.push(`fast path accepts, llhttp ${ll.error ?? 'waits for more'}: ${show}`);
  tally.bothAccept++;
  const problems: string[] = [];
  if (first.method !== fast.head.method) problems.push(`method ${first.method} vs ${fast.head.method}`);
  if (first.url !== fast.head.target) problems.push(`target ${first.url} vs ${fast.head.target}`);
  if (!first.body.equals(fast.body)) problems.push(`body ${JSON.stringify(first.body.toString('latin1'))} vs ${JSON.stringify(fast.body.toString('latin1'))}`);
  if (first.keepAlive === fast.head.close) problems.push(`persistence: llhttp keepAlive ${first.keepAlive}, fast close ${fast.head.close}`);
  if (!fast.head.close && !sameNext(llhttpParse('request', input.subarray(fast.consumed)).messages[0], ll.messages[1])) {
    problems.push('the next request starts elsewhere');
  }
  // What the app reads: the forwarded head with the forwarded bytes, then the next request on the connection.
  // Both ways of forwarding the head: rebuilt from its parsed headers, and its kept lines copied as they came.
  const heads = [forwardedRequestHead(fast.head, '127.0.0.1'), forwardedRequestHead(fast.head, '127.0.0.1', undefined, fast.source)];
  let rebuiltHeaders: string[] | undefined;
  for (const [way, forwardedHead] of heads.entries()) {
    const upstream = llhttpParse('request', Buffer.concat([forwardedHead, fast.forwarded, FORWARD_REQUEST_CANARY]));
    const app = upstream.messages[0];
    const named = way === 0 ? 'rebuilt' : 'kept';
    if (upstream.error || !app?.complete) problems.push(`${named} forwarded request unparseable: ${upstream.error}`);
    else {
      if (app.method !== fast.head.method || app.url !== fast.head.target) problems.push(`${named}: forwarded request line differs`);
      if (!app.body.equals(fast.body)) problems.push(`${named}: app reads body ${JSON.stringify(app.body.toString('latin1'))}`);
      if (upstream.messages.length !== 2 || upstream.messages[1]?.url !== '/__after') problems.push(`${named}: app reads ${upstream.messages.length} requests`);
      if (way === 0) rebuiltHeaders = app.headers;
      else if (!sameHeaders(app.headers, rebuiltHeaders)) problems.push('kept and rebuilt heads carry different headers');
    }
  }
  if (problems.length > 0) tally.disagreements.push(`${problems.join('; ')}: ${show}`);
}

type ResponseVerdict =
  | { kind: 'reject'; why: string }
  | { kind: 'incomplete' }
  | { kind: 'accept'; head: ResponseHead; source: Buffer; body: Buffer; forwarded: Buffer; consumed: number | 'close' };

/** What the fast path's Exchange does with an upstream's bytes (interim responses skipped, as forwarded). */
function fastResponse(data: Buffer, method: string): ResponseVerdict {
  let buffer = data;
  for (;;) {
    const end = buffer.indexOf('\r\n\r\n');
    if (end === -1) return { kind: 'incomplete' };
    const head = parseResponseHead(buffer, end);
    if (typeof head === 'string') return { kind: 'reject', why: head };
    const rest = buffer.subarray(end + 4);
    const offset = data.length - rest.length;
    if (head.status < 200) {
      if (head.status === 101) return { kind: 'reject', why: 'protocol switch' };
      buffer = rest;
      continue;
    }
    const source = buffer;
    if (bodilessResponse(method, head.status)) return { kind: 'accept', head, source, body: Buffer.alloc(0), forwarded: Buffer.alloc(0), consumed: offset };
    if (head.chunked) {
      const decoded: Buffer[] = [];
      const scanner = new ChunkedScanner((d) => decoded.push(Buffer.from(d)));
      const stop = scanner.scan(rest);
      if (scanner.error) return { kind: 'reject', why: scanner.error };
      if (stop === -1) return { kind: 'incomplete' };
      return { kind: 'accept', head, source, body: Buffer.concat(decoded), forwarded: rest.subarray(0, stop), consumed: offset + stop };
    }
    if (head.contentLength >= 0) {
      if (rest.length < head.contentLength) return { kind: 'incomplete' };
      const body = rest.subarray(0, head.contentLength);
      return { kind: 'accept', head, source, body, forwarded: body, consumed: offset + head.contentLength };
    }
    return { kind: 'accept', head, source, body: rest, forwarded: rest, consumed: 'close' };
  }
}

/** The same header lines, whatever their order (a kept Transfer-Encoding stays where it was) and optional whitespace. */
function sameHeaders(a: readonly string[], b: readonly string[] | undefined): boolean {
  if (b === undefined || a.length !== b.length) return false;
  const lines = (h: readonly string[]): string[] => {
    const out: string[] = [];
    for (let i = 0; i < h.length; i += 2) out.push(`${h[i]}:${h[i + 1]!.replace(/^[ \t]+|[ \t]+$/g, '')}`);
    return out.sort();
  };
  return lines(a).join('\n') === lines(b).join('\n');
}

function compareResponse(data: Buffer, method: string, tally: Tally): void {
  const input = Buffer.concat([data, RESPONSE_CANARY]);
  const ll = llhttpParse('response', input, true, method === 'HEAD');
  const first = ll.messages.find((m) => m.status >= 200 || m.status === 101);
  const llAccepts = first?.complete === true;
  if (!llAccepts) tally.llhttpRejects++;
  const fast = fastResponse(input, method);
  const show = JSON.stringify(data.toString('latin1'));
  if (fast.kind === 'reject') {
    tally.fastRejects++;
    if (llAccepts) tally.stricter++;
    return;
  }
  if (fast.kind === 'incomplete') {
    if (llAccepts) tally.disagreements.push(`fast path waits for more of a response llhttp has whole: ${show}`);
    return;
  }
  if (!llAccepts) return void tally.disagreements.push(`fast path accepts a response llhttp ${ll.error ?? 'leaves incomplete'}: ${show}`);
  tally.bothAccept++;
  const problems: string[] = [];
  if (first.status !== fast.head.status) problems.push(`status ${first.status} vs ${fast.head.status}`);
  if (!first.body.equals(fast.body)) problems.push(`body ${JSON.stringify(first.body.toString('latin1'))} vs ${JSON.stringify(fast.body.toString('latin1'))}`);
  const close = fast.consumed === 'close';
  if (!close && first.keepAlive) {
    const next = llhttpParse('response', input.subarray(fast.consumed as number), true).messages[0];
    if (!sameNext(next, ll.messages[ll.messages.indexOf(first) + 1])) problems.push('the next response starts elsewhere');
  }
  // What the client reads: the forwarded head and bytes, then (on a kept-alive connection) the next response.
  // Both ways of forwarding the head: rebuilt from its parsed headers, and its kept lines copied as they came.
  const heads = [forwardedResponseHead(fast.head, close), forwardedResponseHead(fast.head, close, undefined, fast.source)];
  for (const [way, forwardedHead] of heads.entries()) {
    const client = llhttpParse('response', Buffer.concat([forwardedHead, fast.forwarded, close ? Buffer.alloc(0) : FORWARD_RESPONSE_CANARY]), true, method === 'HEAD');
    const seen = client.messages[0];
    const named = way === 0 ? 'rebuilt' : 'kept';
    if (client.error || !seen?.complete) problems.push(`${named} forwarded response unparseable: ${client.error}`);
    else {
      if (seen.status !== fast.head.status) problems.push(`${named}: client reads status ${seen.status}`);
      if (!seen.body.equals(fast.body)) problems.push(`${named}: client reads body ${JSON.stringify(seen.body.toString('latin1'))}`);
      if (!close && client.messages[1]?.status !== 298) problems.push(`${named}: client reads ${client.messages.length} responses`);
      if (way === 1 && !sameHeaders(seen.headers, llhttpParse('response', Buffer.concat([heads[0]!, fast.forwarded]), true, method === 'HEAD').messages[0]?.headers)) {
        problems.push('kept and rebuilt heads carry different headers');
      }
    }
  }
  if (problems.length > 0) tally.disagreements.push(`${problems.join('; ')}: ${show}`);
}

const tally = (): Tally => ({ cases: 0, llhttpRejects: 0, fastRejects: 0, stricter: 0, handoffs: 0, bothAccept: 0, disagreements: [] });

const report = (what: string, t: Tally): string =>
  `${what}: ${t.cases} cases, llhttp rejects ${t.llhttpRejects}, fast path rejects ${t.fastRejects} (${t.stricter} of them llhttp accepts), ` +
  `handed to node:http ${t.handoffs}, both accept ${t.bothAccept}, disagreements ${t.disagreements.length}`;

test('requests: whatever llhttp rejects the data plane rejects, and what both accept is framed identically', () => {
  const g = new Gen(prng(0x7e4e3e47));
  const t = tally();
  for (; t.cases < CASES; t.cases++) compareRequest(generateRequest(g), t);
  console.log(report('requests', t));
  assert.deepEqual(t.disagreements.slice(0, 10), []);
  // The corpus exercises every outcome, not only one of them.
  assert.ok(t.llhttpRejects > CASES / 5 && t.bothAccept > CASES / 5 && t.handoffs > 50, report('requests', t));
});

test('responses: whatever llhttp rejects the data plane rejects, and what both accept is framed identically', () => {
  const g = new Gen(prng(0x5eed0002));
  const t = tally();
  for (; t.cases < CASES; t.cases++) {
    const method = g.chance(0.1) ? 'HEAD' : 'GET';
    compareResponse(generateResponse(g, method), method, t);
  }
  console.log(report('responses', t));
  assert.deepEqual(t.disagreements.slice(0, 10), []);
  assert.ok(t.llhttpRejects > CASES / 10 && t.bothAccept > CASES / 5, report('responses', t));
});
